"""Getting the data: local archives, downloads, md5, and bad archives."""
import hashlib
import os
import tarfile

import pytest

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.tools import cifar10_data
from conftest import run_module, write_data


def _archive(tmp_path, drop=None, name='cifar-10-binary.tar.gz'):
  """A tiny archive packed like the official one (optionally missing a file)."""
  source = tmp_path / 'source'
  write_data(source, train_per_file=3, test_records=4)
  path = str(tmp_path / name)
  with tarfile.open(path, 'w:gz') as tar:
    folder = source / defaults.BATCHES_DIR
    for entry in sorted(os.listdir(folder)):
      if entry != drop:
        tar.add(str(folder / entry), defaults.BATCHES_DIR + '/' + entry)
  return path


def _leftovers(data_dir):
  return [n for n in os.listdir(data_dir) if n.startswith('.extracting')]


def test_local_archive_is_checked_and_extracted(tmp_path):
  data_dir = str(tmp_path / 'data')
  target = cifar10_data.prepare(data_dir, archive=_archive(tmp_path))
  assert target == os.path.join(data_dir, defaults.BATCHES_DIR)
  assert records.check_data_dir(data_dir) == (15, 4)
  assert not _leftovers(data_dir)
  # Present now: used as is, even without the archive.
  assert cifar10_data.prepare(data_dir, archive='/nonexistent') == target


@pytest.mark.parametrize('breakage, expected', [
    ('drop', 'found it without test_batch.bin'),
    ('truncate', 'corrupt or truncated'),
    ('garbage', 'corrupt or truncated'),
])
def test_bad_archives_fail_and_leave_nothing_behind(tmp_path, breakage,
                                                    expected):
  path = _archive(tmp_path, drop='test_batch.bin' if breakage == 'drop'
                  else None)
  if breakage == 'truncate':
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[:len(data) // 2])
  elif breakage == 'garbage':
    with open(path, 'wb') as f:
      f.write(b'not an archive at all' * 100)
  data_dir = str(tmp_path / 'data')
  with pytest.raises(records.DataError) as e:
    cifar10_data.prepare(data_dir, archive=path)
  assert path in str(e.value) and expected in str(e.value)
  assert not os.path.exists(os.path.join(data_dir, defaults.BATCHES_DIR))
  assert not _leftovers(data_dir)


def test_archive_with_a_bad_label_names_the_file(tmp_path):
  source = tmp_path / 'bad'
  write_data(source, train_per_file=2, test_records=2)
  bad = source / defaults.BATCHES_DIR / 'data_batch_2.bin'
  data = bytearray(bad.read_bytes())
  data[3073] = 42   # the second record's label byte
  bad.write_bytes(bytes(data))
  path = str(tmp_path / 'bad.tar.gz')
  with tarfile.open(path, 'w:gz') as tar:
    tar.add(str(source / defaults.BATCHES_DIR), defaults.BATCHES_DIR)
  with pytest.raises(records.DataError) as e:
    cifar10_data.prepare(str(tmp_path / 'data'), archive=path)
  assert 'data_batch_2.bin: expected label bytes 0-9, found 42 in record 1' \
      in str(e.value)


def _md5(path):
  with open(path, 'rb') as f:
    return hashlib.md5(f.read()).hexdigest()


def test_download_checks_md5_and_shows_progress(tmp_path, capsys):
  served = _archive(tmp_path, name='served.tar.gz')
  data_dir = str(tmp_path / 'data')
  cifar10_data.prepare(data_dir, url='file://' + served, md5=_md5(served))
  assert records.check_data_dir(data_dir) == (15, 4)
  assert os.path.isfile(os.path.join(data_dir, defaults.ARCHIVE_NAME))
  assert 'downloading' in capsys.readouterr().err


def test_download_with_wrong_md5_is_removed(tmp_path):
  served = _archive(tmp_path, name='served.tar.gz')
  data_dir = str(tmp_path / 'data')
  with pytest.raises(records.DataError) as e:
    cifar10_data.prepare(data_dir, url='file://' + served, md5='0' * 32)
  assert 'expected md5 %s, found %s' % ('0' * 32, _md5(served)) in str(e.value)
  assert os.listdir(data_dir) == ['.prepare.lock']


def test_offline_says_how_to_supply_the_archive(tmp_path):
  data_dir = str(tmp_path / 'data')
  result = run_module('tools.cifar10_data', '--data_dir', data_dir, '--url',
                      'http://127.0.0.1:9/cifar-10-binary.tar.gz')
  assert result.returncode == 1
  lines = result.stdout.strip().splitlines()
  assert lines[-1].startswith('error: http://127.0.0.1:9/')
  assert 'make data CIFAR10_ARCHIVE=/path/to/cifar-10-binary.tar.gz' \
      in lines[-1]
  assert 'Traceback' not in result.stderr
  assert os.listdir(data_dir) == ['.prepare.lock']
