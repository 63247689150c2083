"""The command line and its verbs: `ganlab train|sample|eval|report|resume|...`, their options and help."""
