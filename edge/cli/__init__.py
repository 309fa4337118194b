"""Command-line entry points (`qamoe-live`, `qamoe-tap`, `qamoe-keys`): parse, build configs, run library code,
map typed errors to exit codes. Only these mains print, exit or configure logging."""
