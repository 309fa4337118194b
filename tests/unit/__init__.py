"""Unit tests: in-process, no devices, no processes of qamoe-live, no built engines, no ../shared media."""
