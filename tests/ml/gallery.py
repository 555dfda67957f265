"""Generated test photos: drawn faces, and online-meeting gallery screenshots built from faces.

A gallery screenshot looks like a video call's grid view: a dark window, 16:9 tiles with
thin borders (one highlighted as the active speaker), a webcam-like background per tile, a
name bar at the bottom left of each tile, and some tiles without video (an initials avatar
instead of a face). The gallery test uses real FER2013 faces (it needs the shared data): the
drawn faces below are found reliably alone at 100 px or more, but in a gallery grid about one
screenshot in three lost a drawn face, which would test the drawing rather than the detector.

FER2013 faces are tight crops (forehead and chin cut, no hair, neck or shoulders). Pasted as
they are, their square edge is the only thing around them ("without context"); with
`context=True` a drawn head and shoulders surround the face and its square edge is feathered
into them, closer to what a webcam shows.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SKIN = [
    (241, 194, 167),
    (224, 172, 105),
    (198, 134, 66),
    (160, 110, 80),
    (120, 80, 60),
    (90, 60, 45),
]
HAIR = [(40, 30, 25), (90, 60, 30), (20, 20, 20), (160, 120, 60)]
# Pixels between tiles, and the height of the meeting toolbar below them.
GAP, TOOLBAR = 8, 40
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Gita", "Hugo", "Ines", "Jun", "Kofi", "Lea"]


def draw_face(
    size: int, seed: int = 0, margin: float = 0.5, background=(90, 110, 140)
) -> Image.Image:
    """An RGB square picture of a drawn frontal face `size` px tall, centred, with `margin`
    x size of background on each side (0: a tight crop, like FER2013's).

    RetinaFace finds these with a score near 1 when they are at least about 100 px tall at its
    input scale (below that the drawn lines get too thin), so tests that need a face do not
    depend on the shared data. Skin, hair and expression vary with `seed`.
    """
    rng = np.random.default_rng(seed)
    side = round(size * (1 + 2 * margin))
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    c, w, h = side / 2, 0.8 * size, size
    skin = SKIN[rng.integers(len(SKIN))]
    hair = HAIR[rng.integers(len(HAIR))]
    draw.ellipse((c - w / 2 - 0.05 * size, c - h / 2 - 0.12 * size, c + w / 2 + 0.05 * size,
                  c + h / 2 - 0.2 * size), fill=hair)  # fmt: skip
    draw.ellipse((c - w / 2, c - h / 2, c + w / 2, c + h / 2), fill=skin)
    for side in (-1, 1):
        x, y = c + side * 0.18 * size, c - 0.08 * size
        draw.ellipse((x - 0.09 * size, y - 0.045 * size, x + 0.09 * size, y + 0.045 * size),
                     fill=(255, 255, 255))  # fmt: skip
        r = 0.04 * size
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(50, 30, 20))
        lift = rng.uniform(-0.03, 0.03) * size
        draw.line((x - 0.1 * size, y - 0.1 * size + lift, x + 0.1 * size, y - 0.11 * size),
                  fill=tuple(v // 2 for v in hair), width=max(1, size // 40))  # fmt: skip
    nose = tuple(int(v * 0.88) for v in skin)
    draw.polygon([(c, c - 0.02 * size), (c - 0.06 * size, c + 0.14 * size),
                  (c + 0.06 * size, c + 0.14 * size)], fill=nose)  # fmt: skip
    smile = rng.uniform(0.1, 0.2) * size
    draw.chord((c - 0.18 * size, c + 0.25 * size - smile, c + 0.18 * size, c + 0.25 * size + smile),
               0, 180, fill=(150, 60, 60))  # fmt: skip
    return image.filter(ImageFilter.GaussianBlur(size / 100))


def fer_faces(data_dir: Path, n: int, seed: int = 0) -> list[Image.Image]:
    """`n` FER2013 validation faces (48x48 grayscale) drawn across the classes, as RGB."""
    files = sorted((data_dir / "fer2013" / "val").glob("*/*.png"))
    picked = np.random.default_rng(seed).choice(len(files), size=n, replace=False)
    return [Image.open(files[i]).convert("RGB") for i in picked]


@dataclass
class Gallery:
    """A generated screenshot and where its faces are."""

    image: Image.Image
    faces: list[tuple[int, int, int, int]]  # x, y, w, h of each pasted face image
    empty_tiles: list[tuple[int, int, int, int]]  # x, y, w, h of tiles without video
    name_bars: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h


def gallery_screenshot(
    faces: list[Image.Image],
    columns: int = 4,
    rows: int = 3,
    tile: tuple[int, int] = (480, 270),
    empty: int = 2,
    face_height: float = 0.7,
    seed: int = 0,
    context: bool = False,
) -> Gallery:
    """A video-call gallery view with `faces` in its tiles and `empty` tiles without video.

    Each face image is scaled to `face_height` of the tile height (FER crops are tight, so
    the face fills the pasted square); `context` draws a head and shoulders around it. Tiles
    are filled in reading order; the empty ones are chosen at random among the columns * rows
    tiles.
    """
    rng = np.random.default_rng(seed)
    n_tiles = columns * rows
    if len(faces) + empty > n_tiles:
        raise ValueError(f"{len(faces)} faces and {empty} empty tiles do not fit {n_tiles} tiles")
    gap, bar = GAP, TOOLBAR
    tw, th = tile
    size = (columns * (tw + gap) + gap, rows * (th + gap) + gap + bar)
    image = Image.new("RGB", size, (32, 33, 36))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, th // 12))
    draw.rectangle((0, size[1] - bar, size[0], size[1]), fill=(24, 24, 27))  # meeting toolbar
    empty_slots = set(rng.choice(n_tiles, size=empty, replace=False).tolist())
    speaker = int(rng.integers(n_tiles))
    found, blank, bars = [], [], []
    faces = iter(faces)
    for slot in range(n_tiles):
        x0, y0 = gap + (slot % columns) * (tw + gap), gap + (slot // columns) * (th + gap)
        name = NAMES[slot % len(NAMES)]
        if slot in empty_slots:
            draw.rectangle((x0, y0, x0 + tw - 1, y0 + th - 1), fill=(60, 64, 67))
            r = th // 5
            cx, cy = x0 + tw // 2, y0 + th // 2
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(26, 115, 232))
            draw.text((cx, cy), name[:2].upper(), fill="white", font=font, anchor="mm")
            blank.append((x0, y0, tw, th))
        else:
            face = next(faces, None)
            if face is None:
                continue
            top = np.array([rng.integers(60, 200) for _ in range(3)])
            ramp = np.linspace(0, 1, th)[:, None, None]
            background = (top * (1 - 0.4 * ramp)).astype(np.uint8) * np.ones((1, tw, 1), np.uint8)
            video = Image.fromarray(background)
            side = round(face_height * th)
            fx = (tw - side) // 2 + int(rng.integers(-tw // 10, tw // 10))
            fy = (th - side) // 2 - th // 20
            face = face.resize((side, side), Image.Resampling.BICUBIC)
            if context:
                _draw_head_and_shoulders(video, face, (fx, fy), rng)
            else:
                video.paste(face, (fx, fy))
            image.paste(video, (x0, y0))
            found.append((x0 + fx, y0 + fy, side, side))
        width = 3 if slot == speaker else 1
        colour = (138, 180, 248) if slot == speaker else (80, 80, 80)
        draw.rectangle((x0, y0, x0 + tw - 1, y0 + th - 1), outline=colour, width=width)
        left, top_, right, bottom = draw.textbbox((0, 0), name, font=font)
        bar = (x0 + 4, y0 + th - (bottom - top_) - 12, x0 + right - left + 14, y0 + th - 4)
        draw.rectangle(bar, fill=(20, 20, 20))
        bars.append((bar[0], bar[1], bar[2] - bar[0] + 1, bar[3] - bar[1] + 1))
        draw.text((x0 + 9 - left, y0 + th - (bottom - top_) - 8 - top_), name, fill="white",
                  font=font)  # fmt: skip
    return Gallery(image, found, blank, bars)


def _draw_head_and_shoulders(video: Image.Image, face: Image.Image, at: tuple[int, int], rng):
    """Paste `face` at `at` into the tile `video` inside a drawn head (hair), neck and
    shoulders, with the face square's edge feathered into them."""
    x, y = at
    s = face.width
    skin = tuple(int(v) for v in np.median(np.asarray(face)[s // 3 : 2 * s // 3], axis=(0, 1)))
    hair = HAIR[rng.integers(len(HAIR))]
    shirt = tuple(int(v) for v in rng.integers(30, 200, 3))
    draw = ImageDraw.Draw(video)
    draw.ellipse((x - 0.6 * s, y + 1.0 * s, x + 1.6 * s, y + 2.2 * s), fill=shirt)
    draw.rectangle((x + 0.3 * s, y + 0.7 * s, x + 0.7 * s, y + 1.15 * s), fill=skin)
    draw.ellipse((x - 0.12 * s, y - 0.25 * s, x + 1.12 * s, y + 0.75 * s), fill=hair)
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).ellipse((0.04 * s, 0.02 * s, 0.96 * s, 0.98 * s), fill=255)
    video.paste(face, (x, y), mask.filter(ImageFilter.GaussianBlur(s / 25)))


def meeting_screenshot(
    faces: list[Image.Image],
    width: int,
    columns: int,
    rows: int,
    empty: int = 1,
    face_height: float = 0.6,
    seed: int = 0,
    context: bool = False,
) -> Gallery:
    """A gallery_screenshot of a 16:9 meeting window `width` px wide, its tiles sized to fit."""
    tile_w = (width - GAP) // columns - GAP
    tile_h = (round(width * 9 / 16) - TOOLBAR - GAP) // rows - GAP
    return gallery_screenshot(faces, columns, rows, (tile_w, tile_h), empty, face_height, seed,
                              context)  # fmt: skip


def classroom_scene(
    faces: list[Image.Image],
    width: int = 1600,
    rows: int = 5,
    face_sides: tuple[int, int] = (32, 64),
    seed: int = 0,
) -> Gallery:
    """A classroom seen from the front: `faces` in rows of students (heads and shoulders)
    behind desks, `face_sides` px at the back and in front, on a plain wall. `faces` fills the
    rows back to front, left to right."""
    rng = np.random.default_rng(seed)
    height = round(width * 2 / 3)
    image = Image.new("RGB", (width, height), (200, 196, 180))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, height // 5), fill=(225, 225, 215))  # the back wall's top
    per_row = -(-len(faces) // rows)
    found = []
    faces = iter(faces)
    for row in range(rows):
        depth = row / max(rows - 1, 1)  # 0 at the back, 1 in front
        side = round(face_sides[0] + depth * (face_sides[1] - face_sides[0]))
        y = round(height * (0.25 + 0.5 * depth))
        for col in range(per_row):
            face = next(faces, None)
            if face is None:
                break
            step = width / per_row
            x = round(step * (col + 0.5) - side / 2 + rng.uniform(-0.15, 0.15) * step)
            face = face.resize((side, side), Image.Resampling.BICUBIC)
            _draw_head_and_shoulders(image, face, (x, y), rng)
            found.append((x, y, side, side))
        desk = y + round(1.6 * side)
        draw.rectangle((0, desk, width, desk + side // 2), fill=(140, 100, 60))
    return Gallery(image, found, [])
