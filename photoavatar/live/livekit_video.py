"""The avatar's video in a LiveKit room: frames composed on the server, published beside the voice through the
SDK's audio/video synchroniser (rtc.AVSynchronizer).

The SDK stamps every frame with the time it is captured, and the SFU and the viewer line audio and video up by
those stamps. Audio is captured when it leaves the AudioSource's queue, so the stream time being captured is
what was pushed minus what is still queued: the synchroniser's `last_audio_time` when each audio push carries
its end time. Frame k (stream time k/fps, the mouth at its middle as in animate/frames.py) is pushed when that
clock reaches k/fps, so it is captured with the audio of the same moment. A barge-in empties the audio queue
(clear_queue) and cuts the mouth (SpeechOnVideo) in the same event-loop turn.
"""

from __future__ import annotations

import asyncio

from livekit import rtc

from photoavatar.live.audio import FRAME_S
from photoavatar.live.video import SpeechOnVideo

VIDEO_TRACK_NAME = "avatar-video"
VIDEO_QUEUE_MS = 100  # the synchroniser's video queue: at most a few frames wait for their capture time


class LiveKitVideo:
    """One session's video: a VideoSource track and the synchroniser that the audio pump pushes through."""

    def __init__(self, speech: SpeechOnVideo):
        self.speech = speech
        self.fps = speech.renderer.fps
        self.width_px, self.height_px = speech.renderer.frame_size_px
        self.source: rtc.VideoSource | None = None
        self.sync: rtc.AVSynchronizer | None = None
        self._pushed_audio_s = 0.0
        self.frames_sent = 0
        self.skipped_frames = 0  # frames whose time had passed before they could be made

    async def publish(self, participant, audio_source: rtc.AudioSource) -> None:
        """Publish the video track on PARTICIPANT (as the avatar's camera) and tie it to AUDIO_SOURCE."""
        self.source = rtc.VideoSource(self.width_px, self.height_px)
        track = rtc.LocalVideoTrack.create_video_track(VIDEO_TRACK_NAME, self.source)
        await participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))
        self.sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=self.source, video_fps=self.fps,
                                       video_queue_size_ms=VIDEO_QUEUE_MS)

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        """The transport's audio pump calls this for every 20 ms frame instead of capture_frame."""
        self._pushed_audio_s += FRAME_S
        await self.sync.push(frame, timestamp=self._pushed_audio_s)

    @property
    def playing_s(self) -> float:
        """Stream time being captured now (pushed audio less what the SDK still queues)."""
        return self.sync.last_audio_time if self.sync is not None else 0.0

    async def pump_video(self) -> None:
        """Frame after frame, each pushed when the audio it goes with is captured."""
        index = 0
        loop = asyncio.get_running_loop()
        while True:
            due_s = index / self.fps
            wait_s = due_s - self.playing_s
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                continue  # look again: a barge-in empties the audio queue and moves this clock ahead
            if -wait_s > 1 / self.fps:  # behind: that frame's moment has passed
                skipped = int(-wait_s * self.fps)
                self.skipped_frames += skipped
                index += skipped
            rendered = await loop.run_in_executor(None, self.speech.render, index)
            picture = rendered.picture
            frame = rtc.VideoFrame(picture.shape[1], picture.shape[0], rtc.VideoBufferType.RGB24, picture.tobytes())
            await self.sync.push(frame, timestamp=rendered.index / self.fps)
            self.frames_sent += 1
            index += 1

    async def aclose(self) -> None:
        if self.sync is not None:
            await self.sync.aclose()
        if self.source is not None:
            await self.source.aclose()
