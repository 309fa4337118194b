"""Integration tests: real engines, media, devices (virtual microphone), sockets and processes."""
