"""What shows between parted lips: the dark cavity, the teeth and the tongue, shaded to sit in the photo.

Colours come from the photo: the lips and skin it shows, the teeth where it shows them, else an off-white
enamel tinted by the colour of the photo's light (its brightest pixels). Flat grey teeth read as dentures, so
each tooth is shaded: rounded across its face, dark separations between teeth, darker toward the mouth
corners (further back, in shadow) and toward the gums (under the upper lip's shadow), a slightly
translucent biting edge. Upper teeth are fixed to the skull; lower teeth ride on the jaw.

Geometry is in mouth-frame units (see `mouth_shapes.MouthFrame`): u across the mouth, v down, both in mouth
widths, so the same numbers fit any photo size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from photoavatar.avatar.landmarks import LIPS_INNER, LIPS_OUTER, NOSE_BOTTOM, Face, mouth_metrics
from photoavatar.avatar.mouth_shapes import InteriorGeometry, LipContours, MouthFrame

# Tooth widths along the arch, from the middle outward (incisor, lateral, canine, premolars), in mouth widths.
UPPER_TOOTH_WIDTHS_W = (0.17, 0.13, 0.15, 0.14, 0.14)
LOWER_TOOTH_WIDTHS_W = (0.11, 0.12, 0.14, 0.14, 0.14)
UPPER_ARCH_RADIUS_W = 0.5
LOWER_ARCH_RADIUS_W = 0.42
WARM_ENAMEL_RGB = np.array([238.0, 230.0, 212.0])
TONGUE_RGB = np.array([178.0, 88.0, 92.0])
SHOWS_TEETH_APERTURE = 0.08  # a source mouth open this wide shows its teeth: sample their colour
TEETH_BRIGHT_SHARE = 0.6  # photo teeth are at least this bright relative to their colour (shade under the lip)
UPPER_TEETH_START_SHARE = 0.35  # upper teeth show from the upper lip down: their band starts this high up
TEETH_MAX_PALENESS = 0.3  # enamel in a photo: saturation (max - min) / max at most this (lips: 0.35-0.6)
SHADOW_COOLING = np.array([0.0, 0.22, 0.32])  # how much green and blue drop in shadow


@dataclass(frozen=True)
class PhotoTeeth:
    """The photo's own upper teeth over a region: colour, and where they show (alpha in [0, 1])."""

    rgb: np.ndarray  # HxWx3 float
    alpha: np.ndarray  # HxW float


@dataclass(frozen=True)
class MouthPalette:
    """Colours (RGB floats 0-255) for the synthesised interior, all taken from or matched to the photo."""

    teeth_rgb: np.ndarray
    lip_rgb: np.ndarray
    skin_rgb: np.ndarray
    cavity_rgb: np.ndarray
    tongue_rgb: np.ndarray
    teeth_from_photo: bool
    grain: float  # the photo's pixel noise (standard deviation, 0-255): synthesised pixels get the same


def _polygon_pixels(image: np.ndarray, polygon_px: np.ndarray,
                    without_px: np.ndarray | None = None) -> np.ndarray:
    area = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(area, [np.round(polygon_px).astype(np.int32)], 1)
    if without_px is not None:
        cv2.fillPoly(area, [np.round(without_px).astype(np.int32)], 0)
    return image[area.astype(bool)].reshape(-1, 3).astype(float)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _light_tint(image: np.ndarray) -> np.ndarray:
    """The colour of the light (unit mean), from the photo's brightest pixels (white patch), damped: a warm
    photo gets warm teeth, but never teeth the colour of skin."""
    white = np.percentile(image.reshape(-1, 3).astype(float), 99.5, axis=0)
    tint = white / max(float(white.mean()), 1.0)
    return np.clip(tint, 0.8, 1.2) ** 0.5


def sample_palette(image: np.ndarray, face: Face, frame: MouthFrame) -> MouthPalette:
    """Colours of lips, skin, teeth, cavity and tongue for this photo."""
    p = face.points_px
    inner = _polygon_pixels(image, p[list(LIPS_INNER)])
    lips = _polygon_pixels(image, p[list(LIPS_OUTER)], without_px=p[list(LIPS_INNER)])
    lip_rgb = np.median(lips, axis=0) if len(lips) else np.array([170.0, 100.0, 95.0])
    philtrum_v = (frame.to_local(p[NOSE_BOTTOM])[1] - 0.15) / 2
    skin_patch = _patch(frame, philtrum_v, 0.04)
    chin_patch = _patch(frame, 0.5, 0.05)
    skin = np.concatenate([_polygon_pixels(image, skin_patch), _polygon_pixels(image, chin_patch)])
    skin_rgb = np.median(skin, axis=0) if len(skin) else lip_rgb * 1.2
    teeth_rgb, from_photo = _teeth_colour(image, face, inner, skin_rgb)
    cavity_rgb = lip_rgb * np.array([0.22, 0.13, 0.13])
    tongue_rgb = 0.5 * lip_rgb + 0.5 * TONGUE_RGB * (_luminance(skin_rgb) / 170.0)
    return MouthPalette(teeth_rgb, lip_rgb, skin_rgb, cavity_rgb, np.clip(tongue_rgb, 0, 255), from_photo,
                        _grain(image, skin_patch))


def photo_teeth_edge(image: np.ndarray, lips: LipContours, frame: MouthFrame,
                     palette: MouthPalette) -> np.polynomial.Polynomial | None:
    """Where the photo's upper teeth end, v(u), if it shows them: the end of the bright band under the upper lip."""
    if not palette.teeth_from_photo:
        return None
    step = 0.25 / frame.width_px
    bright_level = TEETH_BRIGHT_SHARE * float(_luminance(palette.teeth_rgb))
    found_u, found_v = [], []
    for u in np.linspace(-0.3, 0.3, 13):
        top = np.interp(u, lips.upper_inner[:, 0], lips.upper_inner[:, 1])
        bottom = np.interp(u, lips.lower_inner[:, 0], lips.lower_inner[:, 1])
        v = np.arange(top, bottom, step)
        if len(v) < 4:
            continue
        points = frame.to_px(np.stack([np.full_like(v, u), v], axis=1)).astype(np.float32)
        column = cv2.remap(image, points[:, :1], points[:, 1:], cv2.INTER_LINEAR).reshape(-1, 3)
        end = _first_bright_run_end(_luminance(column.astype(float)) > bright_level, len(v))
        if end is not None:
            found_u.append(u)
            found_v.append(v[end])
    if len(found_u) < 7:
        return None
    return np.polynomial.Polynomial.fit(found_u, found_v, deg=2)


def _first_bright_run_end(bright: np.ndarray, samples: int) -> int | None:
    """Index of the last sample of the bright run that starts right under the upper lip (the upper teeth);
    None when the first bright run starts lower down (lower teeth only, or no teeth). A photo taken mid-word
    shows the lower teeth too, below a dark band: they are not part of the run."""
    rows = np.nonzero(bright)[0]
    if not len(rows) or rows[0] > UPPER_TEETH_START_SHARE * samples:
        return None
    gaps = np.nonzero(np.diff(rows) > 4)[0]  # a dark band over a pixel high (4 samples per pixel) ends the run
    return int(rows[gaps[0]] if len(gaps) else rows[-1])


def _patch(frame: MouthFrame, center_v: float, half_height: float) -> np.ndarray:
    """A small skin rectangle across the middle of the face (mouth-frame units) as an image polygon."""
    return frame.to_px(np.array([[-0.2, center_v - half_height], [0.2, center_v - half_height],
                                 [0.2, center_v + half_height], [-0.2, center_v + half_height]]))


def _grain(image: np.ndarray, patch_px: np.ndarray) -> float:
    """Robust noise level of a skin patch: a clean synthetic interior in a grainy photo looks pasted on."""
    x, y, w, h = cv2.boundingRect(np.round(patch_px).astype(np.int32))
    x, y = max(x - 4, 0), max(y - 4, 0)
    region = image[y:y + h + 8, x:x + w + 8].astype(np.float32)
    detail = region - cv2.GaussianBlur(region, (0, 0), 1.2)
    values = _polygon_pixels(detail, patch_px - (x, y))
    if len(values) < 20:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values, axis=0))))


def _teeth_colour(image: np.ndarray, face: Face, inner: np.ndarray,
                  skin_rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    if mouth_metrics(face).aperture >= SHOWS_TEETH_APERTURE and len(inner) > 30:
        # Teeth are the bright, pale pixels between the lips; the lips' moist inner side is bright too but red.
        pale = inner[_paleness(inner) <= TEETH_MAX_PALENESS]
        if len(pale) > 12:
            bright = pale[_luminance(pale) >= np.percentile(_luminance(pale), 50)]
            if _luminance(np.median(bright, axis=0)) > 0.8 * _luminance(skin_rgb):
                return np.median(bright, axis=0), True
    # Teeth inside the mouth sit in some shade: a little brighter than the lit skin, never paper white.
    brightness = float(np.clip(_luminance(skin_rgb) * 1.05 + 25, 150, 220))
    # Against warm skin a neutral white reads blue-grey: lean the enamel a little toward the skin's hue.
    skin_hue = np.clip(skin_rgb / max(float(skin_rgb.mean()), 1.0), 0.5, 1.6) ** 0.3
    enamel = WARM_ENAMEL_RGB * _light_tint(image) * skin_hue
    return enamel * brightness / _luminance(enamel), False


def _paleness(rgb: np.ndarray) -> np.ndarray:
    """Saturation (max - min) / max per pixel: 0 for white or grey, near 1 for pure colours."""
    rgb = np.asarray(rgb, float)
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) / np.maximum(rgb.max(axis=-1), 1.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _shaded(colour: np.ndarray, light: np.ndarray) -> np.ndarray:
    """colour * light, where the shadow inside a mouth is warm (reddish light bounced off lips and tongue)."""
    light = light[..., None]
    return colour * light * (1 - (1 - np.clip(light, 0, 1)) * SHADOW_COOLING)


def _teeth_shading(u: np.ndarray, widths_w: tuple[float, ...], radius_w: float, width_px: float,
                   separation_depth: float | np.ndarray = 0.32) -> np.ndarray:
    """Per-pixel brightness of a row of teeth seen from the front: rounded faces, dark gaps between them."""
    arch = radius_w * np.arcsin(np.clip(u / radius_w, -1.0, 1.0))
    bounds = np.concatenate([[0.0], np.cumsum(widths_w)])
    along = np.abs(arch)
    index = np.clip(np.searchsorted(bounds, along) - 1, 0, len(widths_w) - 1)
    start, end = bounds[index], bounds[index + 1]
    across = np.clip((along - start) / (end - start), 0.0, 1.0)
    # Gap between teeth, measured in image pixels after the arch's foreshortening.
    slope = np.sqrt(np.clip(1 - (u / radius_w) ** 2, 0.05, 1.0))
    gap_px = np.minimum(along - start, end - along) * slope * width_px
    rounded = 0.86 + 0.14 * np.sin(np.pi * across)
    separation = 1.0 - separation_depth * np.exp(-((gap_px / 0.8) ** 2))
    behind = np.clip(1.0 - (along / bounds[-1]) ** 2.2, 0.0, 1.0)  # further back, more shadow
    exists = along < bounds[-1]
    return rounded * separation * (0.3 + 0.7 * behind) * exists


def render_interior(u: np.ndarray, v: np.ndarray, geometry: InteriorGeometry, palette: MouthPalette,
                    width_px: float, photo_teeth: PhotoTeeth | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rgb float HxWx3, coverage HxW in [0,1]) of the mouth interior at local coordinates u, v."""
    g = geometry
    upper = np.interp(u, g.u_knots, g.upper_lip_v)
    lower = np.interp(u, g.u_knots, g.lower_lip_v)
    inside_u = (u >= g.u_knots[0]) & (u <= g.u_knots[-1])
    coverage = np.clip(0.5 + np.minimum(v - upper, lower - v) * width_px / 1.3, 0.0, 1.0) * inside_u
    rgb = _cavity(u, v, upper, lower, palette)
    rgb = _tongue_body(rgb, u, v, lower, g, palette)
    if g.tongue == "up":
        rgb = _tongue_tip(rgb, u, v, g, palette, width_px, between=False)
    rgb = _lower_teeth(rgb, u, v, lower, g, palette, width_px)
    if g.tongue == "between":
        rgb = _tongue_tip(rgb, u, v, g, palette, width_px, between=True)
    rgb = _upper_teeth(rgb, u, v, upper, g, palette, width_px, photo_teeth)
    rgb = _wet_lip_rims(rgb, v, upper, lower, palette, width_px)
    # The upper lip shades what is right under it.
    light = (0.7 + 0.3 * _smoothstep((v - upper) * width_px / 3.0)) * g.shade
    rgb = _shaded(rgb, light)
    grain = np.random.default_rng(7).normal(0.0, palette.grain, rgb.shape[:2])[..., None]
    return rgb + grain, coverage


def _wet_lip_rims(rgb, v, upper, lower, palette: MouthPalette, width_px: float) -> np.ndarray:
    """Parted lips show their moist inner side: a darker, redder rim that fades into the mouth."""
    rim_px = max(1.2, 0.02 * width_px)
    lower_rim = np.exp(-np.maximum(lower - v, 0.0) * width_px / rim_px)
    upper_rim = 0.5 * np.exp(-np.maximum(v - upper, 0.0) * width_px / rim_px)
    amount = np.clip(np.maximum(lower_rim, upper_rim), 0, 1)[..., None] * 0.8
    rim = palette.lip_rgb * np.array([0.62, 0.48, 0.5])
    return rgb * (1 - amount) + rim * amount


def _cavity(u, v, upper, lower, palette: MouthPalette) -> np.ndarray:
    depth = np.clip(1.0 - (u / 0.45) ** 2, 0.0, 1.0)  # toward the corners: the cheeks' deep shadow
    middle = (upper + lower) / 2
    height = np.maximum(lower - upper, 1e-3)
    vertical = np.clip(1.0 - np.abs(v - middle) / height, 0.0, 1.0)
    light = (0.35 + 0.65 * depth * vertical)[..., None]
    return palette.cavity_rgb * light * np.ones(u.shape + (3,))


def _tongue_body(rgb, u, v, lower, g: InteriorGeometry, palette: MouthPalette) -> np.ndarray:
    # The tongue lies behind the lower teeth: its top shows as a dim, reddish rise above them.
    top = np.interp(u, g.u_knots, g.lower_teeth_edge_v) - 0.07 + 0.35 * u**2
    amount = _smoothstep((v - top) / 0.06) * np.clip(1 - (u / 0.32) ** 2, 0, 1)
    tongue = palette.tongue_rgb * 0.55
    return rgb * (1 - amount[..., None]) + tongue * amount[..., None]


def _tongue_tip(rgb, u, v, g: InteriorGeometry, palette: MouthPalette, width_px: float, between: bool):
    teeth_top = float(np.interp(0.0, g.u_knots, g.upper_teeth_edge_v))
    lower_top = float(np.interp(0.0, g.u_knots, g.lower_teeth_edge_v))
    if between:  # TH: the tip lies on the lower teeth and reaches out under the upper ones
        center_v, half_h, half_w = teeth_top + 0.05, 0.065, 0.17
    else:  # L: the tip rises from behind the lower teeth to touch behind the upper ones
        center_v, half_h, half_w = lower_top + 0.04, lower_top + 0.04 - teeth_top + 0.01, 0.2
    r = np.sqrt((u / half_w) ** 2 + ((v - center_v) / half_h) ** 2)
    amount = np.clip((1 - r) * half_h * width_px / 1.2, 0, 1)
    # Rounded body: lit near its tip, falling off toward its sides and down into the mouth.
    height = np.clip((center_v - v) / half_h, -1, 1)
    across = np.sqrt(np.clip(1 - (u / half_w) ** 2, 0, 1))
    light = (0.55 + 0.35 * across + 0.15 * height) * (1.0 if between else 0.85)
    tip = _shaded(palette.tongue_rgb, light)
    return rgb * (1 - amount[..., None]) + tip * amount[..., None]


def _upper_teeth(rgb, u, v, upper, g: InteriorGeometry, palette: MouthPalette, width_px: float,
                 photo_teeth: PhotoTeeth | None):
    edge = np.interp(u, g.u_knots, g.upper_teeth_edge_v)
    # Gaps between teeth show most at the biting edge (embrasures) and fade toward the gum.
    depth = 0.12 + 0.3 * _smoothstep(1 - (edge - v) * width_px / 5.0)
    shade = _teeth_shading(u, UPPER_TOOTH_WIDTHS_W, UPPER_ARCH_RADIUS_W, width_px, depth)
    # Each tooth's biting edge is rounded at its corners: the edge rises a little where shading is dark.
    edge = edge - 0.012 * (1 - shade.clip(0.3, 1.0)) ** 1.5
    amount = np.clip(0.5 + (edge - v) * width_px, 0, 1) * (shade > 0.05)
    toward_gum = 0.85 + 0.15 * _smoothstep((v - upper) * width_px / 5.0)
    translucent = 1.0 - 0.18 * _smoothstep(1 - (edge - v) * width_px / 3.0)
    teeth = _shaded(palette.teeth_rgb, shade * toward_gum * translucent)
    if photo_teeth is not None:  # the person's own teeth, where the photo shows them (they never move)
        own = photo_teeth.alpha[..., None]
        teeth = teeth * (1 - own) + photo_teeth.rgb * own
    return rgb * (1 - amount[..., None]) + teeth * amount[..., None]


def _lower_teeth(rgb, u, v, lower, g: InteriorGeometry, palette: MouthPalette, width_px: float):
    edge = np.interp(u, g.u_knots, g.lower_teeth_edge_v)
    shade = _teeth_shading(u, LOWER_TOOTH_WIDTHS_W, LOWER_ARCH_RADIUS_W, width_px, 0.15)
    edge = edge + 0.01 * (1 - shade.clip(0.3, 1.0)) ** 1.5
    amount = np.clip(0.5 + (v - edge) * width_px, 0, 1) * (shade > 0.05)
    # Lower teeth stand in the shadow of the upper lip and teeth.
    teeth = _shaded(palette.teeth_rgb, 0.74 * shade)
    return rgb * (1 - amount[..., None]) + teeth * amount[..., None]
