"""Avatar video frames on a stream clock: the one renderer of `photoavatar say` and of the server's video track.

A `FrameRenderer` holds one avatar and one mixer on a stream timeline (seconds since the stream began).
Utterances are placed on it where their first sample plays (`add_utterance`); a barge-in drops them
(`cut`); in between the mouth rests and the idle loop keeps playing, so a live stream is continuous.
Frame k composes idle frame k mod N (the loop plays at the bundle's fps, which is the video's) with the mouth
of the mixer at `frame_time_s(k)`, through the loudness rule and the same compose as web/compose.js.

Why the middle of the frame: frame k is on screen from k/fps to (k+1)/fps, so showing the mixer at its start
makes every picture lag its sound by half a frame on average (20 ms at 25 fps), while the web client samples
the mixer at the audio time it draws. The middle keeps every moment within half a frame of its sound
(bench/say_mouth.py; tests/animate/test_frames.py holds it to the JavaScript client on one timeline).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoavatar.animate.jaw import jaw_weights
from photoavatar.animate.mixer import PROSODY_HOLD_S, MixerConfig, MixerFrame, VisemeMixer
from photoavatar.avatar.bundle import (
    ATLAS_IMAGE,
    ATLAS_LAYOUT,
    IDLE_VIDEO,
    MASK_IMAGE,
    ROI,
    AvatarBundle,
    load_bundle,
)
from photoavatar.avatar.compose import BundleAssets, compose_frame, load_assets
from photoavatar.avatar.video import read_mp4
from photoavatar.speech.types import ProsodyFrame, VisemeEvent
from photoavatar.spring import settle_time_s

NOD_MAX_PX = 1.5  # as web/compose.js NOD_MAX_PX: a strong accent drops the mouth this far
# After its last event an utterance's springs are settled well within this (SETTLE_LEVEL 0.9 is reached in
# settle_time_s; ten of those is below 1e-6 of a step), so a fresh mixer at Rest is indistinguishable.
_FORGET_AFTER_S = 10 * settle_time_s() + 0.5


def frame_time_s(index: int, fps: float) -> float:
    """The stream time frame INDEX shows: the middle of its time on screen, [index/fps, (index+1)/fps)."""
    return (index + 0.5) / fps


@dataclass(frozen=True)
class RenderedFrame:
    index: int
    time_s: float  # stream time the mouth shows (frame_time_s)
    picture: np.ndarray  # H x W x 3 uint8 RGB, the bundle's working size
    mix: MixerFrame


_DECODED_BUNDLES = 8  # bundles kept decoded (about 80 MB each at 408 x 512, 5 s)


@functools.lru_cache(maxsize=_DECODED_BUNDLES)
def _decoded(root: str, modified_ns: int) -> tuple[np.ndarray, BundleAssets]:
    bundle = load_bundle(Path(root))
    frames = read_mp4(bundle.idle_video)
    frames.setflags(write=False)  # shared by every renderer of this bundle
    return frames, load_assets(bundle)


def decoded_bundle(bundle: AvatarBundle) -> tuple[np.ndarray, BundleAssets]:
    """The idle loop (N x H x W x 3 uint8) and the compose assets, decoded once per bundle and shared read-only
    (every video session of one avatar uses the same pixels)."""
    modified_ns = max(bundle.path_of(f).stat().st_mtime_ns for f in (IDLE_VIDEO, ATLAS_IMAGE, MASK_IMAGE, ATLAS_LAYOUT, ROI))
    return _decoded(str(bundle.root), modified_ns)


class FrameRenderer:
    """Frames of one avatar on one stream timeline; not thread-safe (one caller renders, in frame order)."""

    def __init__(self, bundle: AvatarBundle, config: MixerConfig | None = None):
        self.fps = float(bundle.manifest.fps)
        self._config = config or MixerConfig(visemes=tuple(bundle.manifest.visemes))
        self._idle, self._assets = decoded_bundle(bundle)
        self._mixer = VisemeMixer(self._config)
        self._busy_until_s = 0.0  # stream time after which no event placed so far can move the mouth

    @property
    def frame_size_px(self) -> tuple[int, int]:
        """(width, height) of every frame."""
        return self._idle.shape[2], self._idle.shape[1]

    def add_utterance(self, start_s: float, events: Iterable[VisemeEvent] = (),
                      prosody: Iterable[ProsodyFrame] = ()) -> None:
        """Place events and prosody (times in seconds of utterance audio) with s = 0 at stream time START_S."""
        shifted = [VisemeEvent(e.viseme, e.start_s + start_s, e.end_s + start_s, e.weight) for e in events]
        frames = [ProsodyFrame(p.time_s + start_s, p.loudness_db, p.pitch_hz, p.accent) for p in prosody]
        self._mixer.add_events(shifted)
        self._mixer.add_prosody(frames)
        ends = [e.end_s for e in shifted] + [p.time_s + PROSODY_HOLD_S for p in frames]
        self._busy_until_s = max(self._busy_until_s, start_s, *ends)

    def replace_events(self, start_s: float, events: Iterable[VisemeEvent] = (),
                       prosody: Iterable[ProsodyFrame] = ()) -> None:
        """Drop every placed event and place these instead, as `add_utterance` (the one utterance on screen,
        its timeline moved by a gap in its audio): the mouth goes on from where it is now."""
        self._mixer.clear()
        self.add_utterance(start_s, events, prosody)

    def cut(self) -> None:
        """Drop every placed event (barge-in, stop): the mouth relaxes to Rest from where it is now."""
        self._mixer.clear()
        self._busy_until_s = self._mixer.time_s

    def render(self, index: int) -> RenderedFrame:
        """Frame INDEX (never before the last one rendered)."""
        time_s = frame_time_s(index, self.fps)
        self._forget_if_settled(time_s)
        mix = self._mixer.advance_to(max(time_s, self._mixer.time_s))
        idle_index = index % len(self._idle)
        picture = compose_frame(self._idle[idle_index], self._assets, idle_index,
                                jaw_weights(mix.weights, mix.loudness), nod_px=mix.nod * NOD_MAX_PX)
        return RenderedFrame(index, time_s, picture, mix)

    def _forget_if_settled(self, time_s: float) -> None:
        # A live stream runs for hours; the Python mixer keeps every event it was given. Once the mouth has
        # long settled after the last one, a fresh mixer at Rest gives the same frames and forgets them.
        if time_s > self._busy_until_s + _FORGET_AFTER_S and self._mixer.time_s > self._busy_until_s:
            self._mixer = VisemeMixer(self._config, start_time_s=self._mixer.time_s)
            self._busy_until_s = self._mixer.time_s


def talk_frames(bundle: AvatarBundle, events: Iterable[VisemeEvent], prosody: Iterable[ProsodyFrame],
                duration_s: float) -> Iterator[RenderedFrame]:
    """Every frame of one utterance that starts at stream time 0 and is DURATION_S long (say)."""
    renderer = FrameRenderer(bundle)
    renderer.add_utterance(0.0, events, prosody)
    for index in range(int(np.ceil(duration_s * renderer.fps))):
        yield renderer.render(index)
