"""Class names drawn under the training images that TensorBoard shows.

An image summary carries no caption, and a tag that changed with the class
would scatter one image across many cards. So the name is drawn into the
image: each of the ten class names is rendered once, with the 5x5 capital
letters below, into a strip that is stacked under the (enlarged) image.
Pure numpy at graph-building time; no font files, no extra dependency.
"""
import numpy as np

# Letters, digits and a few marks, for any class names; '#' is ink. Other
# characters are drawn as '?'.
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
    'J': '..### ...#. ...#. #..#. .##..',
    'Q': '.###. #...# #.#.# #..#. .##.#',
    'V': '#...# #...# #...# .#.#. ..#..',
    'W': '#...# #...# #.#.# ##.## #...#',
    'X': '#...# .#.#. ..#.. .#.#. #...#',
    'Y': '#...# .#.#. ..#.. ..#.. ..#..',
    'Z': '##### ...#. ..#.. .#... #####',
    '0': '.###. #..## #.#.# ##..# .###.',
    '1': '..#.. .##.. ..#.. ..#.. .###.',
    '2': '.###. #...# ..##. .#... #####',
    '3': '####. ....# .###. ....# ####.',
    '4': '#..#. #..#. ##### ...#. ...#.',
    '5': '##### #.... ####. ....# ####.',
    '6': '.###. #.... ####. #...# .###.',
    '7': '##### ...#. ..#.. .#... .#...',
    '8': '.###. #...# .###. #...# .###.',
    '9': '.###. #...# .#### ....# .###.',
    '-': '..... ..... ##### ..... .....',
    '_': '..... ..... ..... ..... #####',
    '.': '..... ..... ..... ..... ..#..',
    ' ': '..... ..... ..... ..... .....',
    '?': '.###. #...# ..##. ..... ..#..',
}
GLYPH = 5          # glyphs are GLYPH x GLYPH, one blank column between
MARGIN = 2         # blank rows above and below the text


def glyph(letter):
  rows = _GLYPHS.get(letter.upper(), _GLYPHS['?']).split()
  return np.array([[c == '#' for c in row] for row in rows], np.uint8)


def strip(text, width):
  """`text` in white on black, centred in a uint8 [GLYPH + 2 MARGIN, width];
  a name too long for the width is cut, ending in '.'."""
  out = np.zeros([GLYPH + 2 * MARGIN, width], np.uint8)
  fits = (width - 1) // (GLYPH + 1)   # a blank column left at each side
  if len(text) > fits:
    text = text[:fits - 1] + '.'
  letters = [glyph(c) for c in text]
  used = len(letters) * (GLYPH + 1) - 1
  x = (width - used) // 2
  for g in letters:
    out[MARGIN:MARGIN + GLYPH, x:x + GLYPH] = 255 * g
    x += GLYPH + 1
  return out


def strips(class_names, width):
  """One caption strip per class: uint8 [classes, height, width, 3]."""
  return np.stack([np.repeat(strip(name, width)[:, :, None], 3, axis=2)
                   for name in class_names])
