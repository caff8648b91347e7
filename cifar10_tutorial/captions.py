"""Class names drawn under the training images that TensorBoard shows.

An image summary carries no caption, and a tag that changed with the class
would scatter one image across many cards. So the name is drawn into the
image: each of the ten class names is rendered once, with the 5x5 capital
letters below, into a strip that is stacked under the (enlarged) image.
Pure numpy at graph-building time; no font files, no extra dependency.
"""
import numpy as np

# The letters the ten class names use; '#' is ink.
_GLYPHS = {
    'A': '.###. #...# ##### #...# #...#',
    'B': '####. #...# ####. #...# ####.',
    'C': '.#### #.... #.... #.... .####',
    'D': '####. #...# #...# #...# ####.',
    'E': '##### #.... ####. #.... #####',
    'F': '##### #.... ####. #.... #....',
    'G': '.#### #.... #..## #...# .###.',
    'H': '#...# #...# ##### #...# #...#',
    'I': '##### ..#.. ..#.. ..#.. #####',
    'K': '#...# #..#. ###.. #..#. #...#',
    'L': '#.... #.... #.... #.... #####',
    'M': '#...# ##.## #.#.# #...# #...#',
    'N': '#...# ##..# #.#.# #..## #...#',
    'O': '.###. #...# #...# #...# .###.',
    'P': '####. #...# ####. #.... #....',
    'R': '####. #...# ####. #..#. #...#',
    'S': '.#### #.... .###. ....# ####.',
    'T': '##### ..#.. ..#.. ..#.. ..#..',
    'U': '#...# #...# #...# #...# .###.',
}
GLYPH = 5          # glyphs are GLYPH x GLYPH, one blank column between
MARGIN = 2         # blank rows above and below the text


def glyph(letter):
  rows = _GLYPHS[letter.upper()].split()
  return np.array([[c == '#' for c in row] for row in rows], np.uint8)


def strip(text, width):
  """`text` in white on black, centred in a uint8 [GLYPH + 2 MARGIN, width]."""
  out = np.zeros([GLYPH + 2 * MARGIN, width], np.uint8)
  letters = [glyph(c) for c in text]
  used = len(letters) * (GLYPH + 1) - 1
  if used > width:
    raise ValueError('%r needs %d pixels, the image is %d wide' %
                     (text, used, width))
  x = (width - used) // 2
  for g in letters:
    out[MARGIN:MARGIN + GLYPH, x:x + GLYPH] = 255 * g
    x += GLYPH + 1
  return out


def strips(class_names, width):
  """One caption strip per class: uint8 [classes, height, width, 3]."""
  return np.stack([np.repeat(strip(name, width)[:, :, None], 3, axis=2)
                   for name in class_names])
