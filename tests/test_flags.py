"""Flags parse as a user means them; bad ones fail with one clear line."""
import argparse
import importlib
import os
import re

import pytest

from cifar10_tutorial.shell import flags


@pytest.mark.parametrize('args, expected', [
    ([], False), (['--run_once'], True), (['--run_once=False'], False),
    (['--run_once', 'false'], False), (['--run_once=1'], True),
    (['--run_once=0'], False),
])
def test_booleans_mean_what_they_say(args, expected):
  assert flags.parse('cifar10_eval', args).run_once is expected


def test_training_defaults_are_the_tutorials():
  cfg = flags.parse('cifar10_train', [])
  assert (cfg.batch_size, cfg.log_frequency, cfg.data_dir) == (128, 10, 'data')
  assert cfg.log_device_placement is False


@pytest.mark.parametrize('args, message', [
    (['--run_once=maybe'], "expected true or false, found 'maybe'"),
    (['--batch_size', '0'], 'expected a number above 0, found 0'),
    (['--batch_size', '-3'], 'expected a number above 0, found -3'),
    (['--num_examples', 'ten'], "expected a whole number, found 'ten'"),
    (['--no_such_flag'], 'unrecognized arguments: --no_such_flag'),
])
def test_bad_flags_exit_with_one_clear_line(args, message, capsys):
  with pytest.raises(SystemExit) as e:
    flags.parse('cifar10_eval', args)
  assert e.value.code == 2
  assert message in capsys.readouterr().err


@pytest.mark.parametrize('program, args, message', [
    ('cifar10_train', ['--input_threads', '100000'],
     'expected at most %d (4 per core on this machine\'s %d), found 100000'),
    ('cluster_launch', ['--workers', '5000'],
     'expected at most %d (4 per core on this machine\'s %d), found 5000'),
    ('board', ['--port', '99999'], 'expected a port from 1 to 65535, found '
                                   '99999'),
])
def test_what_a_machine_cannot_give_is_refused_before_any_thread_starts(
    program, args, message, capsys):
  # 100,000 input threads once took 5.7 GB and would not stop.
  with pytest.raises(SystemExit) as e:
    flags.parse(program, args)
  assert e.value.code == 2
  cores = os.cpu_count()
  if '%d' in message:
    message = message % (4 * cores, cores)
  assert message in capsys.readouterr().err


def test_max_steps_must_be_positive(capsys):
  with pytest.raises(SystemExit):
    flags.parse('cifar10_train', ['--max_steps', '0'])
  assert 'expected a number above 0' in capsys.readouterr().err


@pytest.mark.parametrize('module', [
    'cifar10_train', 'cifar10_multi_gpu_train', 'cifar10_eval',
    'tools.cifar10_data', 'tools.plot', 'tools.bench', 'own_images.predict',
    'own_images.convert', 'tools.board', 'cluster.cifar10_dist_train',
    'cluster.launch'])
def test_every_entry_point_documents_each_option_and_its_default(module,
                                                                 capsys):
  entry = importlib.import_module('cifar10_tutorial.' + module)
  with pytest.raises(SystemExit) as e:
    entry.main(['--help'])
  assert e.value.code == 0
  text = capsys.readouterr().out
  # The options sections (grouped), one entry per option (argparse wraps
  # long lines); a group's heading is a line of its own.
  section = text.split('\noptions:\n', 1)[1]
  entries = re.split(r'\n(?=  -)|\n\n\S[^\n]*:\n', section)
  options = {e.split()[0].rstrip(','): ' '.join(e.split()) for e in entries
             if e.strip().startswith('--') and not e.strip().startswith(
                 '--help')}
  program = {'cluster.launch': 'cluster_launch'}.get(
      module, module.rsplit('.', 1)[-1])
  declared = {o.name: o for o in flags._flat(flags.PROGRAMS[program])
              if isinstance(o, flags.Option) and
              o.kwargs.get('help') is not argparse.SUPPRESS}
  assert sorted(options) == sorted('--' + n for n in declared)
  for option, entry_text in options.items():
    # Each default said once; an option without one says what happens.
    assert entry_text.count('(default:') <= 1, entry_text
    if declared[option[2:]].kwargs.get('default') is not None:
      assert '(default:' in entry_text, entry_text


@pytest.mark.parametrize('module', ['cifar10_train', 'cifar10_eval',
                                    'cifar10_multi_gpu_train',
                                    'cluster.launch', 'tools.bench'])
def test_help_and_a_bad_flag_answer_before_tensorflow_is_imported(module):
  # --help and argparse's errors come from the flags alone: TensorFlow's
  # import (seconds) is never paid for them. No abbreviations either.
  import subprocess
  import sys
  probe = ('import runpy, sys\n'
           'sys.argv = ["x"] + sys.argv[1:]\n'
           'try:\n'
           '  runpy.run_module("cifar10_tutorial.%s", run_name="__main__")\n'
           'except SystemExit as e:\n'
           '  print("exit", e.code, "tensorflow" in sys.modules)\n' % module)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  for args, code in ((['--help'], 0), (['--max_step', '3'], 2)):
    result = subprocess.run([sys.executable, '-c', probe] + args, cwd=root,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == 'exit %d False' % code, (
        result.stdout + result.stderr)
  # One line: what was wrong, and the option it was probably meant to be
  # where the program has one.
  meant = {'cifar10_eval': '', 'tools.bench': ' (did you mean --steps?)'}.get(
      module, ' (did you mean --max_steps?)')
  assert result.stderr.strip().splitlines() == [
      'x: error: unrecognized arguments: --max_step 3%s; --help lists the '
      'options' % meant]
