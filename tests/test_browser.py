"""TensorBoard in a real (headless) browser, on a run made by the tests."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from conftest import run_module

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
pytestmark = pytest.mark.skipif(
    not CHROMIUM, reason="no Chromium: `make browser` installs Debian's "
    'chromium (as root, with the package registry reachable)')
# Headless flags for this sandbox: no GPU (TensorBoard is told to draw its
# charts as SVG), and no background connections the closed network refuses.
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu',
                  '--disable-quic', '--no-first-run',
                  '--disable-background-networking',
                  '--disable-component-update', '--disable-sync',
                  '--window-size=1400,1000', '--virtual-time-budget=20000']


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _get(url):
  with urllib.request.urlopen(url, timeout=10) as response:
    return json.loads(response.read())


def _chromium(tmp_path, url, *what):
  profile = tmp_path / ('profile-%d' % len(os.listdir(tmp_path)))
  return subprocess.run([CHROMIUM] + CHROMIUM_FLAGS + [
      '--user-data-dir=%s' % profile] + list(what) + [url],
                        capture_output=True, text=True, timeout=90)


def test_tensorboard_shows_loss_and_precision(trained_run, tmp_path):
  logdir = tmp_path / 'logdir'
  shutil.copytree(trained_run['train_dir'], str(logdir / 'train'))
  assert run_module('cifar10_eval', '--data_dir', trained_run['data_dir'],
                    '--checkpoint_dir', trained_run['train_dir'],
                    '--eval_dir', str(logdir / 'eval'),
                    '--run_once').returncode == 0
  port = _free_port()
  base = 'http://127.0.0.1:%d' % port
  board = subprocess.Popen(
      [sys.executable, '-m', 'tensorboard.main', '--logdir', str(logdir),
       '--host', '127.0.0.1', '--port', str(port)],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 60
    while True:
      try:
        if sorted(_get(base + '/data/runs')) == ['eval', 'train']:
          break
      except OSError:
        pass
      assert time.time() < deadline, 'TensorBoard did not come up'
      time.sleep(0.5)
    # TensorBoard's own data endpoints.
    tags = _get(base + '/data/plugin/scalars/tags')
    assert {'total_loss', 'cross_entropy', 'learning_rate'} <= set(
        tags['train'])
    assert 'Precision @ 1' in tags['eval']
    query = urllib.parse.urlencode({'run': 'eval', 'tag': 'Precision @ 1'})
    series = _get(base + '/data/plugin/scalars/scalars?' + query)
    assert [point[1] for point in series] == [6]
    # The page, as a person sees it.
    page = base + ('/?forceSVG=true&tagFilter=' +
                   urllib.parse.quote('Precision @ 1|total_loss') +
                   '#timeseries')
    # The page lists a group per tag it found data for, titled with the tag.
    # (The chart cards inside are drawn lazily: a --dump-dom of headless
    # Chromium often holds the group headings before any chart, even on a
    # long run, so the values are checked through the endpoints above and
    # the screenshot is kept.)
    titles = ['>%s<' % t for t in ('Precision @ 1', 'total_loss')]
    for _ in range(4):   # the page renders asynchronously: give it time
      dom = _chromium(tmp_path, page, '--dump-dom').stdout
      if all(t in dom for t in titles):
        break
      time.sleep(2)
    for title in titles:
      assert title in dom, title
    shot = tmp_path / 'tensorboard.png'
    _chromium(tmp_path, page, '--screenshot=%s' % shot)
    assert shot.stat().st_size > 20000
    print('screenshot: %s' % shot)
  finally:
    board.terminate()
    board.wait(timeout=30)
