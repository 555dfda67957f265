"""Generated stand-ins for the shared group photos: drawn faces the detector finds, so a test
that runs without the shared data still checks real detections and their count."""

from PIL import Image

from tests.ml.gallery import draw_face

DRAWN_FACES = 3


def drawn_group_photo(seed: int = 0) -> Image.Image:
    """A 'class photo' of DRAWN_FACES drawn faces side by side, 160 px tall each."""
    tiles = [draw_face(160, seed=seed * 10 + i, margin=0.3) for i in range(DRAWN_FACES)]
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + 40, tiles[0].height + 40), "#c8ccd2")
    x = 20
    for tile in tiles:
        canvas.paste(tile, (x, 20))
        x += tile.width
    return canvas
