"""The trust boundary: vetting of the composed command, the closed registry of buildable objects, value checks,
bounded reading of shared files and settings stored on disk."""
