"""Text becomes audio chunks with phoneme timing, then viseme and prosody events on the audio clock."""
