"""Live progress on a terminal; plain lines in a log."""
import os
import pty
import re
import subprocess
import sys

from conftest import ROOT

from cifar10_tutorial.core import progress


def _run_on_a_terminal(args):
  """Runs a CLI with stdout on a pseudo-terminal; returns what it drew."""
  master, slave = pty.openpty()
  proc = subprocess.Popen([sys.executable, '-m'] + args, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), stdout=slave,
                          stderr=subprocess.PIPE)
  os.close(slave)
  drawn = b''
  while True:
    try:
      chunk = os.read(master, 4096)
    except OSError:   # the terminal closed: the program is done
      break
    if not chunk:
      break
    drawn += chunk
  os.close(master)
  assert proc.wait(timeout=120) == 0, proc.stderr.read()
  return drawn.decode()


def test_training_on_a_terminal_shows_a_live_line_with_eta(tiny_data,
                                                           tmp_path):
  drawn = _run_on_a_terminal([
      'cifar10_tutorial.cifar10_train', '--data_dir', tiny_data[0],
      '--train_dir', str(tmp_path / 'train'), '--max_steps', '300',
      '--batch_size', '4', '--log_frequency', '100',
      # A step a run, so the line is redrawn between steps even where the
      # steps take no time (a GPU trains 300 in a blink, a run at a time).
      '--steps_per_run', '1'])
  live = re.findall(r'\rstep (\d+)/300  loss [\d.]+  [\d.]+ examples/sec  '
                    r'ETA \d+:\d\d:\d\d\x1b\[K', drawn)
  assert len(live) >= 2 and int(live[-1]) > int(live[0])
  # The permanent lines are still there, each on a line of its own: what a
  # terminal shows of a line is what follows its last carriage return.
  lines = [l.rstrip('\r').split('\r')[-1].replace('\x1b[K', '')
           for l in drawn.split('\n')]
  for step in (100, 200, 300):
    assert any(re.match(r'\d\d:\d\d:\d\d step %d, loss = ' % step, l)
               for l in lines), lines


def test_eval_on_a_terminal_shows_its_pass(trained_run, tmp_path):
  drawn = _run_on_a_terminal([
      'cifar10_tutorial.cifar10_eval', '--data_dir', trained_run['data_dir'],
      '--checkpoint_dir', trained_run['train_dir'], '--eval_dir',
      str(tmp_path / 'eval'), '--run_once', '--batch_size', '1'])
  assert re.search(r'\revaluating model\.ckpt-6: \d+/30 examples', drawn)
  assert 'step 6: precision @ 1 = ' in drawn


def test_logs_that_are_not_a_terminal_get_plain_lines(trained_run):
  out = trained_run['result'].stdout
  assert '\r' not in out and '\x1b' not in out
  assert 'ETA' not in out


def test_durations_read_as_hours_minutes_seconds():
  assert progress.duration(3723) == '1:02:03'
  assert progress.duration(59.9) == '0:00:59'
  assert progress.duration(-5) == '0:00:00'
