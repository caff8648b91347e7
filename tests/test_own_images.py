"""Your own images: convert folders of them into the binary batches, train,
evaluate and classify image files, with as many classes as the data has."""
import json
import os
import re
import shutil
import struct
import tarfile
import tempfile
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image   # matplotlib's dependency: in the venv already

from cifar10_tutorial.core import captions
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.own_images import convert
from conftest import run_module, small_filesystem

COLORS = {'blue': (30, 30, 200), 'green': (30, 200, 30), 'red': (200, 30, 30)}
FORMATS = ['png', 'jpg', 'bmp', 'gif']


def _write_images(root, train=6, test=2, seed=0):
  """root/{train,test}/<color>/NN.<format>: noisy solid colours, 40x50, in
  every format, some grayscale or with alpha."""
  rng = np.random.RandomState(seed)
  for split, n in (('train', train), ('test', test)):
    for name, color in COLORS.items():
      folder = os.path.join(root, split, name)
      os.makedirs(folder)
      for i in range(n):
        pixels = np.clip(np.array(color) + rng.normal(0, 20, (40, 50, 3)), 0,
                         255).astype(np.uint8)
        image = Image.fromarray(pixels)
        if i == 4:
          image = image.convert('RGBA')
        image.save(os.path.join(folder, '%02d.%s' % (
            i, 'png' if i == 4 else FORMATS[i % 4])))
  return root


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  base = tmp_path_factory.mktemp('own')
  src = _write_images(str(base / 'my images'))
  with open(os.path.join(src, 'train', 'red', 'README.txt'), 'w') as f:
    f.write('not an image')
  out = str(base / 'my data')
  result = run_module('own_images.convert', '--src', src, '--out', out)
  assert result.returncode == 0, result.stdout + result.stderr
  return dict(base=base, src=src, out=out, result=result)


def test_convert_writes_the_official_layout_with_the_class_names(converted):
  out = converted['out']
  assert converted['result'].stdout.strip().splitlines()[-1] == (
      'wrote %s/cifar-10-batches-bin: 18 training and 6 test images of 3 '
      'classes (blue, green, red); skipped 1 file that did not decode' % out)
  assert ('skipped %s: train/red/README.txt: expected a JPEG, PNG, GIF or '
          'BMP image' % converted['src']) in converted['result'].stdout
  assert records.class_names(out) == ('blue', 'green', 'red')
  assert records.check_data_dir(out) == (18, 6)
  folder = os.path.join(out, defaults.BATCHES_DIR)
  assert sorted(os.listdir(folder)) == sorted(
      defaults.TRAIN_FILES + defaults.TEST_FILES + (defaults.META_FILE,))
  images, labels = zip(*[records.read_records(os.path.join(folder, f))
                         for f in defaults.TRAIN_FILES])
  images, labels = np.concatenate(images), np.concatenate(labels)
  # Each record is its class's colour, resized to 32x32; shuffled.
  for image, label in zip(images, labels):
    color = COLORS[('blue', 'green', 'red')[label]]
    np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), color,
                               atol=12)
  assert list(labels) != sorted(labels)
  assert not [n for n in os.listdir(out) if n.startswith('.converting')]


@pytest.mark.parametrize('kind', ['zip', 'tar.gz'])
def test_convert_reads_archives_of_the_folder_too(converted, tmp_path, kind):
  archive = str(tmp_path / ('images.' + kind))
  if kind == 'zip':
    with zipfile.ZipFile(archive, 'w') as z:
      for folder, _, files in os.walk(converted['src']):
        for name in files:
          path = os.path.join(folder, name)
          z.write(path, os.path.join('top', os.path.relpath(
              path, converted['src'])))
  else:
    with tarfile.open(archive, 'w:gz') as tar:
      tar.add(converted['src'], 'top')
  out = str(tmp_path / 'data')
  convert.convert(archive, out)
  for name in defaults.TRAIN_FILES + defaults.TEST_FILES:
    with open(os.path.join(out, defaults.BATCHES_DIR, name), 'rb') as a, \
        open(os.path.join(converted['out'], defaults.BATCHES_DIR, name),
             'rb') as b:
      assert a.read() == b.read()   # the same records: the same fixed seed


def test_converted_data_trains_evaluates_and_predicts(converted, tmp_path):
  out, train_dir = converted['out'], str(tmp_path / 'run')
  trained = run_module('cifar10_train', '--data_dir', out, '--train_dir',
                       train_dir, '--max_steps', '30', '--batch_size', '6',
                       '--log_frequency', '10')
  assert trained.returncode == 0, trained.stdout + trained.stderr
  eval_dir = str(tmp_path / 'eval')
  evaluated = run_module('cifar10_eval', '--data_dir', out,
                         '--checkpoint_dir', train_dir, '--eval_dir',
                         eval_dir, '--run_once')
  assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  assert 'step 30: precision @ 1 = ' in evaluated.stdout
  from conftest import summary_tags
  tags = summary_tags(eval_dir)
  assert {'per_class_precision/' + n for n in COLORS} <= set(tags)
  assert 'per_class_precision/airplane' not in tags
  src = converted['src']
  files = [os.path.join(src, 'test', 'red', '00.png'),
           os.path.join(src, 'test', 'green')]
  predicted = run_module('own_images.predict', '--data_dir', out,
                         '--checkpoint_dir', train_dir, *files)
  assert predicted.returncode == 0, predicted.stdout + predicted.stderr
  lines = predicted.stdout.strip().splitlines()
  assert lines[0] == 'model.ckpt-30 (step 30), classes of %s:' % out
  assert lines[1].split() == ['file', '1st', '2nd', '3rd']
  expected = [files[0]] + [os.path.join(files[1], '%02d.%s' % (
      i, FORMATS[i % 4])) for i in range(2)]
  assert len(lines) == 2 + len(expected)
  rows = {f: l[len(f):].split() for f in expected for l in lines[2:]
          if l.startswith(f + ' ')}
  assert sorted(rows) == sorted(expected)
  for row in rows.values():
    assert sorted(row[0::2]) == sorted(COLORS)   # each class once, by rank
    probabilities = [float(p) for p in row[1::2]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert abs(sum(probabilities) - 1) < 0.01
  as_json = run_module('own_images.predict', '--json', '--data_dir', out,
                       '--checkpoint_dir', train_dir, files[0])
  document = json.loads(as_json.stdout)
  assert document['step'] == 30 and document['errors'] == []
  assert [t['class'] for t in document['images'][0]['top']] == \
      rows[files[0]][0::2]


def test_predict_says_which_files_failed_and_still_classifies_the_rest(
    converted, trained_run, tmp_path):
  empty, page = tmp_path / 'empty.png', tmp_path / 'page.jpg'
  empty.write_bytes(b'')
  page.write_text('<html>Not Found</html>')
  # Small files that declare huge images ("decompression bombs").
  png, gif = tmp_path / 'bomb.png', tmp_path / 'bomb.gif'
  png.write_bytes(_png_header(30000, 30000))
  # A 1 x 1 screen (what a GIF's header declares) holding a 20000 x 20000
  # frame, and a version no standard has: the decoder takes both.
  gif.write_bytes(b'GIF80a' + struct.pack('<HHBBB', 1, 1, 0, 0, 0) +
                  b'\x2c' + struct.pack('<HHHHB', 0, 0, 20000, 20000, 0) +
                  b'\x02\x02\x44\x01\x00\x3b')
  good = os.path.join(converted['src'], 'test', 'blue', '00.png')
  result = run_module('own_images.predict', '--data_dir',
                      trained_run['data_dir'],
                      '--checkpoint_dir', trained_run['train_dir'],
                      str(empty), good, str(page), str(tmp_path / 'gone.gif'),
                      str(png), str(gif))
  assert result.returncode == 1
  lines = result.stdout.strip().splitlines()
  assert lines[3:5] == [
      'error: %s: expected an image of at most 100 megapixels, found one of '
      '30000 x 30000 pixels' % png,
      'error: %s: expected an image of at most 100 megapixels, found one of '
      '20000 x 20000 pixels' % gif]
  assert not re.search(r'^[IWEF]\d{4} ', result.stderr, re.M), result.stderr
  assert lines[:3] == [
      'error: %s: expected an image file, found an empty file' % empty,
      'error: %s: expected a JPEG, PNG, GIF or BMP image, found data that is '
      'not one (Unknown image file format. One of JPEG, JPEG XL, PNG, GIF, '
      'BMP, WebP required)' % page,
      'error: %s: expected an image file, found no such file or directory' %
      (tmp_path / 'gone.gif')]
  assert lines[-1].startswith(good + ' ')   # CIFAR-10's names: 10 classes
  assert 'Traceback' not in result.stderr


def _png_header(width, height):
  """A PNG's signature and header chunk declaring width x height, and a
  little data: what a decoder reads before it allocates the image."""
  def chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
  return (b'\x89PNG\r\n\x1a\n' +
          chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0,
                                     0)) +
          chunk(b'IDAT', zlib.compress(bytes(1000))) + chunk(b'IEND', b''))


def test_a_full_temporary_folder_is_named_not_the_archive(converted,
                                                          tmp_path):
  archive = str(tmp_path / 'images.tar.gz')
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(converted['src'], arcname='images')
  with small_filesystem(str(tmp_path / 'tmp'), '64k') as small:
    if small is None:
      pytest.skip('cannot mount a small file system here')
    result = run_module('own_images.convert', '--src', archive, '--out',
                        str(tmp_path / 'out'), env={'TMPDIR': small})
    assert os.listdir(small) == []   # what it unpacked, removed
  assert result.returncode == 1
  assert result.stdout.strip().splitlines()[-1] == (
      'error: %s: expected room to unpack %s (TMPDIR), found the disk full; '
      'set TMPDIR to a folder with room' % (small, archive))
  assert not os.path.exists(str(tmp_path / 'out'))


def test_a_checkpoint_for_other_classes_is_one_line(converted, trained_run,
                                                    tmp_path):
  expected = ('model.ckpt-6: expected a network for 3 classes (the classes '
              'of %s), found one for 10: a run made on other data? Train on '
              'this data in a folder of its own' % converted['out'])
  good = os.path.join(converted['src'], 'test', 'blue', '00.png')
  for module, args in (
      ('own_images.predict', ['--checkpoint_dir', trained_run['train_dir'],
                              good]),
      ('cifar10_eval', ['--checkpoint_dir', trained_run['train_dir'],
                        '--eval_dir', str(tmp_path / 'eval'), '--run_once'])):
    result = run_module(module, '--data_dir', converted['out'], *args)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1].endswith(expected)
    assert 'Traceback' not in result.stderr
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  resumed = run_module('cifar10_train', '--data_dir', converted['out'],
                       '--train_dir', train_dir, '--max_steps', '8',
                       '--batch_size', '8', '--allow_changed_settings')
  assert resumed.returncode == 1
  assert resumed.stdout.strip().splitlines()[-1].endswith(expected)


def _convert_fails(src, tmp_path):
  out = str(tmp_path / 'out')
  result = run_module('own_images.convert', '--src', src, '--out', out)
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(os.path.join(out, defaults.BATCHES_DIR))
  if os.path.isdir(out):
    assert not os.listdir(out)
  return result.stdout.strip().splitlines()[-1]


def test_too_many_classes_an_empty_class_or_no_images_are_clear_errors(
    tmp_path):
  many = tmp_path / 'many'
  for i in range(256):
    (many / 'train' / ('c%03d' % i)).mkdir(parents=True)
  (many / 'test').mkdir()
  assert _convert_fails(str(many), tmp_path) == (
      'error: %s: expected at most 255 classes (a record\'s label is one '
      'byte), found 256' % many)
  empty = _write_images(str(tmp_path / 'empty'))
  os.makedirs(os.path.join(empty, 'train', 'zebra'))
  assert _convert_fails(empty, tmp_path) == (
      'error: %s: expected images in train/zebra/, found an empty class' %
      empty)
  nothing = tmp_path / 'nothing'
  (nothing / 'train').mkdir(parents=True)
  (nothing / 'test').mkdir()
  assert _convert_fails(str(nothing), tmp_path) == (
      'error: %s: expected one folder of images per class in train/, found '
      'none' % nothing)
  assert _convert_fails(str(tmp_path / 'not here'), tmp_path) == (
      'error: %s: expected a folder, .zip or .tar.gz of images, found no '
      'such file or folder' % (tmp_path / 'not here'))


def test_a_class_name_that_cannot_be_one_line_is_refused(tmp_path):
  src = _write_images(str(tmp_path / 'src'))
  os.rename(os.path.join(src, 'train', 'red'),
            os.path.join(src, 'train', 'r\ned'))
  assert _convert_fails(src, tmp_path) == (
      "error: %s: expected class folder names that fit on one line of "
      "batches.meta.txt, found train/'r\\ned' (a control character in it); "
      "rename the folder" % src)


def test_a_file_that_is_not_an_archive_is_one_line(tmp_path):
  junk = tmp_path / 'photos.tar.gz'
  junk.write_bytes(b'not an archive at all' * 10)
  assert _convert_fails(str(junk), tmp_path) == (
      'error: %s: expected a folder, .zip or .tar.gz of images, found a file '
      'that is none of them (file could not be opened successfully)' % junk)


def test_what_a_killed_conversion_left_is_removed_by_the_next(converted,
                                                              tmp_path):
  dead = 2 ** 22 + 12345   # above the kernel's largest process id
  scratch = os.path.join(tempfile.gettempdir(), 'cifar10-convert-%d-x' % dead)
  out = str(tmp_path / 'out')
  half = os.path.join(out, '.converting-%d-y' % dead)
  for folder in (scratch, half):
    os.makedirs(os.path.join(folder, 'partial'))
  result = run_module('own_images.convert', '--src', converted['src'],
                      '--out', out)
  assert result.returncode == 0, result.stdout + result.stderr
  assert not os.path.exists(scratch) and not os.path.exists(half)


def test_predict_refuses_what_is_not_a_file_without_reading_it(
    converted, trained_run, tmp_path):
  fifo = str(tmp_path / 'pipe.png')
  os.mkfifo(fifo)   # reading it would wait for a writer forever
  result = run_module('own_images.predict', '--data_dir',
                      trained_run['data_dir'],
                      '--checkpoint_dir', trained_run['train_dir'], fifo,
                      '/dev/zero', timeout=60)
  assert result.returncode == 1
  for path in (fifo, '/dev/zero'):
    assert ('error: %s: expected an image file, found a device, pipe or '
            'socket, not a file' % path) in result.stdout
  assert 'Traceback' not in result.stderr


def test_convert_never_overwrites_batches(converted):
  result = run_module('own_images.convert', '--src', converted['src'], '--out',
                      converted['out'])
  assert result.returncode == 1
  assert result.stdout.strip().endswith(
      'cifar-10-batches-bin: expected a place for new batches, found batches '
      'there already (move them, or choose another OUT)')
  assert records.check_data_dir(converted['out']) == (18, 6)


def test_any_class_name_gets_a_readable_caption():
  names = ['Zebra-2', 'x_y', 'jaguar', 'quokka', 'wolf 9', 'a_name_far_too_long']
  strips = captions.strips(names, 72)
  assert len({s.tobytes() for s in strips}) == len(names)
  assert not strips[:, :, [0, -1]].any()
  # The long one is cut to fit, ending in a dot.
  np.testing.assert_array_equal(strips[5, :, :, 0],
                                captions.strip('a_name_far.', 72))
