"""photoavatar: one portrait photo becomes a live, lip-synced talking avatar.

Stages, in data-flow order (a stage imports only from the ones before it):
  avatar/   photo -> avatar bundle (idle loop, viseme atlas, mask, head track)
  speech/   text -> audio chunks with phoneme timing -> viseme and prosody events
  animate/  events -> per-frame mouth weights (the mixer) -> composed frames
  live/     sessions that move audio and events to clients (WebRTC, LiveKit)
  server/, cli.py: thin edges over the stages.
"""

__version__ = "0.1.0"
