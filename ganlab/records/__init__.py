"""Records a run leaves: checkpoints, the run folder and its lock, caches, logs, pictures; one guarded writer."""
