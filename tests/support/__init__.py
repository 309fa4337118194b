"""Helpers the tests share: live-run fixtures, the bad-input catalogue and its kit, the PulseAudio microphone."""
