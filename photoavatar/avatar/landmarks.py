"""Face landmarks from MediaPipe Face Mesh, whose model ships inside the mediapipe 0.10.21 wheel (offline).

A face is 478 points (468 mesh + 10 iris) in pixels of the image it was found in. The index groups below
name the parts we animate; mouth and eye metrics are measured the same way in tests and in the pipeline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from photoavatar.avatar.native_logs import native_stderr_filtered, quiet_environment

# Ordered loops around the lips (clockwise in the image, starting at the left mouth corner).
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
UPPER_LIP_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_LIP_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_LIP_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_LIP_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_CORNERS = (61, 291)
INNER_GAP_PAIRS = ((82, 87), (13, 14), (312, 317))  # upper/lower inner-lip points facing each other
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
JAW_LOWER = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)
CHIN = 152
NOSE_TIP = 1
NOSE_BOTTOM = 2
# Eyes as seen in the image: "image_left" is the subject's right eye.
EYE_IMAGE_LEFT = {"upper": (159, 158, 160), "lower": (145, 153, 144), "corners": (33, 133)}
EYE_IMAGE_RIGHT = {"upper": (386, 385, 387), "lower": (374, 380, 373), "corners": (362, 263)}
FACE_SIDES = (234, 454)


@dataclass(frozen=True)
class Face:
    points_px: np.ndarray  # (478, 2) float64, x, y in pixels
    depth: np.ndarray  # (478,) relative depth (MediaPipe z, in units of image width)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """x, y, w, h of the face oval in pixels."""
        oval = self.points_px[list(FACE_OVAL)]
        x0, y0 = np.floor(oval.min(axis=0)).astype(int)
        x1, y1 = np.ceil(oval.max(axis=0)).astype(int)
        return int(x0), int(y0), int(x1 - x0), int(y1 - y0)

    @property
    def width_px(self) -> float:
        left, right = self.points_px[list(FACE_SIDES)]
        return float(np.linalg.norm(right - left))

    def transformed(self, scale: float, offset_px: tuple[float, float]) -> Face:
        """The same face in an image that was scaled by `scale` and then shifted by `offset_px`."""
        return Face(self.points_px * scale + np.asarray(offset_px, dtype=float), self.depth)


@dataclass(frozen=True)
class MouthMetrics:
    aperture: float  # mean inner-lip gap / mouth width
    width_px: float  # corner to corner, outer lip
    gap_px: float


def mouth_metrics(face: Face) -> MouthMetrics:
    p = face.points_px
    width = float(np.linalg.norm(p[MOUTH_CORNERS[1]] - p[MOUTH_CORNERS[0]]))
    gap = float(np.mean([max(0.0, p[lower][1] - p[upper][1]) for upper, lower in INNER_GAP_PAIRS]))
    return MouthMetrics(gap / width if width > 0 else 0.0, width, gap)


def eye_aperture(face: Face) -> float:
    """Mean lid gap / eye width over both eyes; about 0.25-0.35 open, under 0.1 closed."""
    p = face.points_px
    ratios = []
    for eye in (EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT):
        gap = np.mean([p[lo][1] - p[up][1] for up, lo in zip(eye["upper"], eye["lower"], strict=True)])
        width = np.linalg.norm(p[eye["corners"][1]] - p[eye["corners"][0]])
        ratios.append(gap / width if width > 0 else 0.0)
    return float(np.mean(ratios))


def yaw_ratio(face: Face) -> float:
    """How far the head is turned: 0 frontal, about +-1 in profile (nose tip between the face sides)."""
    p = face.points_px
    left, right, nose = p[FACE_SIDES[0]][0], p[FACE_SIDES[1]][0], p[NOSE_TIP][0]
    half = (right - left) / 2
    return float((nose - (left + right) / 2) / half) if half > 0 else 0.0


class FaceMeshDetector:
    """A reusable MediaPipe Face Mesh in static-image mode (thread-safe: one image at a time).

    The native graph logs when it starts and when an image starts another of its stages or interpreters
    (a first face, a new image size): every call runs with the native stderr filtered (native_logs.py)."""

    def __init__(self, max_faces: int = 6, min_confidence: float = 0.5):
        quiet_environment()
        import mediapipe as mp

        with native_stderr_filtered():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True,
                min_detection_confidence=min_confidence)
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # starts the graph and its first interpreter
        self._lock = threading.Lock()

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, ordered left to right."""
        image = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
        height, width = image.shape[:2]
        with self._lock, native_stderr_filtered():  # a new image size can start another interpreter: chatter
            result = self._mesh.process(image)
        faces = []
        for landmarks in result.multi_face_landmarks or []:
            raw = np.array([(lm.x, lm.y, lm.z) for lm in landmarks.landmark], dtype=np.float64)
            faces.append(Face(raw[:, :2] * (width, height), raw[:, 2]))
        return sorted(faces, key=lambda face: face.box[0])

    def close(self) -> None:
        self._mesh.close()


class FaceDetector:
    """MediaPipe's full-range face detector (BlazeFace): its score says how face-like a region looks."""

    def __init__(self):
        quiet_environment()
        import mediapipe as mp

        with native_stderr_filtered():
            self._detector = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                       min_detection_confidence=0.05)
            self._detector.process(np.zeros((64, 64, 3), np.uint8))  # its start-up chatter, filtered
        self._lock = threading.Lock()

    def best_score(self, image_rgb: np.ndarray) -> float:
        """The highest detection score in the image (0 when the detector sees no face at all)."""
        with self._lock, native_stderr_filtered():
            result = self._detector.process(np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8))
        return max((float(d.score[0]) for d in result.detections or []), default=0.0)


_shared: FaceMeshDetector | None = None
_shared_detector: FaceDetector | None = None
_shared_lock = threading.Lock()


def detect_faces(image_rgb: np.ndarray) -> list[Face]:
    """Faces in an RGB image with a detector shared by the process (the model loads once)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FaceMeshDetector()
    return _shared.detect(image_rgb)


def detection_score(image_rgb: np.ndarray) -> float:
    """How sure the face detector is that `image_rgb` (a region around one face) shows a face, 0..1."""
    global _shared_detector
    with _shared_lock:
        if _shared_detector is None:
            _shared_detector = FaceDetector()
    return _shared_detector.best_score(image_rgb)
