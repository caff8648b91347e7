"""Every command-line option, in one place: its name, default, choices, help.

Flags keep the tutorial's names (`--data_dir`, `--train_dir`, `--max_steps`,
...). Programs parse them in main() only, never at import:

    cfg = flags.parse('cifar10_train', argv, __doc__)

and code that needs a configuration without a command line (tests, the
bench) makes the same namespace from keywords:

    cfg = flags.training_config(max_steps=6, batch_size=8)

Booleans are real booleans: `--run_once`, `--run_once=true` and
`--run_once false` all mean what they say, and `--run_once maybe` is an
error. Unknown flags and bad values exit with one line and status 2; an
unknown or out-of-choice keyword is a TypeError or ValueError.
"""
import argparse
import collections
import difflib
import os

from cifar10_tutorial.core import defaults

# Defaults that are not numbers of the tutorial: where things go.
DATA_DIR = 'data'
TRAIN_DIR = 'train_dirs/cifar10_train'
EVAL_DIR = 'train_dirs/cifar10_eval'
PLOT = 'train_dirs/cifar10_plot.png'
BENCH_JSON = 'train_dirs/bench.json'

_TRUE = ('1', 'true', 't', 'yes', 'y', 'on')
_FALSE = ('0', 'false', 'f', 'no', 'n', 'off')


def boolean(text):
  value = str(text).strip().lower()
  if value in _TRUE:
    return True
  if value in _FALSE:
    return False
  raise argparse.ArgumentTypeError('expected true or false, found %r' % text)


def positive_int(text):
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError('expected a whole number, found %r' % text)
  if value <= 0:
    raise argparse.ArgumentTypeError('expected a number above 0, found %d'
                                     % value)
  return value


def non_negative_int(text):
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError('expected a whole number, found %r' % text)
  if value < 0:
    raise argparse.ArgumentTypeError('expected 0 or more, found %d' % value)
  return value


def _at_most(limit, what):
  """A positive_int type that also refuses more than `limit`, saying why."""
  def parse(text):
    value = positive_int(text)
    if value > limit:
      raise argparse.ArgumentTypeError(
          'expected at most %d (%s), found %d' % (limit, what, value))
    return value
  return parse


def _cores():
  return os.cpu_count() or 1


# Threads and processes a program starts: a few per core is all a machine
# can use (the tutorial's default is one input thread per core).
PER_CORE = 4


def threads(text):
  return _at_most(PER_CORE * _cores(), '%d per core on this machine\'s %d' % (
      PER_CORE, _cores()))(text)


def processes(text):
  value = non_negative_int(text)
  limit = PER_CORE * _cores()
  if value > limit:
    raise argparse.ArgumentTypeError(
        'expected at most %d (%d per core on this machine\'s %d), found %d' % (
            limit, PER_CORE, _cores(), value))
  return value


def _at_most_processes(text):
  value = processes(text)
  if value == 0:
    raise argparse.ArgumentTypeError('expected a number above 0, found 0')
  return value


def port(text):
  value = positive_int(text)
  if value > 65535:
    raise argparse.ArgumentTypeError('expected a port from 1 to 65535, found '
                                     '%d' % value)
  return value


def auto_or_boolean(text):
  if str(text).strip().lower() == defaults.AUTO:
    return defaults.AUTO
  return boolean(text)


def auto_or_positive_int(text):
  if str(text).strip().lower() == defaults.AUTO:
    return defaults.AUTO
  return positive_int(text)


def names(text):
  """A comma-separated list of names ('' is none)."""
  return [n for n in str(text).split(',') if n]


# An option: its name and argparse's keywords. `exclusive` options are added
# as one mutually exclusive group; a Positional is an argument without '--'.
Option = collections.namedtuple('Option', ['name', 'kwargs'])
Exclusive = collections.namedtuple('Exclusive', ['options'])
Positional = collections.namedtuple('Positional', ['name', 'kwargs'])


def _opt(name, **kwargs):
  return Option(name, kwargs)


def _bool(name, default, help_text):
  return _opt(name, type=boolean, nargs='?', const=True, default=default,
              metavar='BOOL', help=help_text)


DATA_DIR_OPTION = _opt(
    'data_dir', default=DATA_DIR, help='folder holding cifar-10-batches-bin/ '
    '(the tutorial\'s meaning), or that folder itself')
TF_LOGS = _bool('tf_logs', False,
                'show TensorFlow\'s own C++ logs and deprecation warnings')
INPUT_PIPELINE = _opt(
    'input_pipeline', choices=defaults.INPUT_PIPELINES,
    default=defaults.INPUT_PIPELINES[0],
    help='batched: read and distort %d records per call, each with its own '
         'random draws (about 6x less CPU per example); per_example: one '
         'record per call, as in the tutorial. Same distributions'
    % defaults.READ_CHUNK)
MODEL = [
    _opt('lrn', choices=defaults.LRNS, default=defaults.LRNS[0],
         help='local response normalization: matmul (a banded matrix '
              'product, faster) or tf (tf.nn.lrn); same numbers'),
    _opt('precision', choices=defaults.PRECISIONS,
         default=defaults.PRECISIONS[0],
         help='bf16: convolutions and matrix products in bfloat16 (faster '
              'only on CPUs with bfloat16 matrix units, such as AMX, and on '
              'GPUs); variables, loss and averages stay float32. '
              'bf16_emulated: the same roundings in float32 kernels, to '
              'check bf16\'s accuracy on a CPU without bfloat16 units'),
]
TRAINING = [
    DATA_DIR_OPTION,
    _opt('train_dir', default=TRAIN_DIR,
         help='where checkpoints and summaries go; an existing run there is '
              'resumed, never deleted'),
    _opt('max_steps', type=positive_int, default=defaults.MAX_STEPS,
         help='global step at which training stops'),
    _opt('batch_size', type=positive_int, default=defaults.BATCH_SIZE,
         help='examples per step (per tower, for the multi-GPU trainer)'),
    _opt('log_frequency', type=positive_int, default=defaults.LOG_FREQUENCY,
         help='steps between progress lines'),
    _opt('input_threads', type=threads, default=defaults.INPUT_THREADS,
         help='preprocessing threads filling the example queue (the '
              'tutorial: one per CPU)'),
    INPUT_PIPELINE,
    Exclusive([
        _opt('save_checkpoint_secs', type=positive_int,
             help='seconds between checkpoints (default: %d for '
                  'cifar10_train)' % defaults.SAVE_CHECKPOINT_SECS),
        _opt('save_checkpoint_steps', type=positive_int,
             help='steps between checkpoints (default: %s for '
                  'cifar10_multi_gpu_train)' %
                  format(defaults.MULTI_GPU_CHECKPOINT_STEPS, ',')),
    ]),
    _bool('log_device_placement', False, 'log the device every op runs on'),
    _bool('allow_changed_settings', False,
          'resume a run with settings that change its math (examples per '
          'step, precision, data), instead of refusing'),
    # How the steps run; none of these changes the math.
    _opt('steps_per_run', type=auto_or_positive_int, default=defaults.AUTO,
         help='training steps per session.run: an in-graph loop of whole '
              'steps (dequeue, gradients, update, averages, global step), so '
              'Python and the session are paid once per N steps; logging, '
              'the NaN check and Ctrl-C act between runs. auto: %d when the '
              'towers are on GPUs, else 1' % defaults.GPU_STEPS_PER_RUN),
    _opt('preprocess_on', choices=defaults.PREPROCESS_ON, default=defaults.AUTO,
         help='cpu: the input threads crop, flip, adjust and standardize '
              'each example before it is queued; device: the queue holds '
              'the raw uint8 images and each tower does that on its own '
              'device, a batch at a time (same distributions); auto: device '
              'when the towers are on GPUs and --input_pipeline is batched'),
    _opt('xla', type=auto_or_boolean, default=defaults.AUTO,
         metavar='BOOL|auto',
         help='compile the training step with XLA, which fuses its many '
              'small ops; auto: on when the towers are on GPUs'),
    _opt('prefetch_to_device', type=auto_or_boolean, default=defaults.AUTO,
         metavar='BOOL|auto',
         help='copy each tower\'s next batch to its device while the '
              'current step runs (a staging area), so no step waits for a '
              'copy; auto: on when the towers are on GPUs'),
    _opt('compiled_loop', type=auto_or_boolean, default=defaults.AUTO,
         metavar='BOOL|auto',
         help='run each session.run\'s steps as one XLA program over '
              'batches staged on the device the run before, the '
              'distortions drawn statelessly from the global step (same '
              'distributions), so the device runs the steps back to back; '
              'one tower a process, with --xla, --prefetch_to_device and '
              '--preprocess_on device (not for --variable_update cpu, '
              'first_tower or replicated, nor parameter servers); auto: on '
              'when the towers are on GPUs'),
] + MODEL + [TF_LOGS]
OPEN_PORTS = _bool(
    'allow_open_ports', False,
    'run a cluster on this machine even where its processes cannot be kept '
    'in a network of their own (a namespace with loopback only): '
    'TensorFlow\'s runtime then listens on every network interface, '
    'unauthenticated. Without it, the multi-GPU trainer trains its towers '
    'in one process instead and the launcher refuses')
MULTI_GPU = TRAINING + [
    _opt('num_gpus', type=positive_int, default=1, help='number of towers'),
    _opt('tower_device', choices=defaults.TOWER_DEVICES, default='gpu',
         help='gpu: towers on /gpu:i; cpu: on virtual CPU devices (testing, '
              'graph viewing); auto: gpu if any'),
    _opt('variable_update', choices=defaults.VARIABLE_UPDATES,
         default=defaults.AUTO,
         help='where the variables live and are updated. collective: a '
              'process per tower, each with its own input and its own copy '
              'of the variables, the gradients summed across them by one '
              'all-reduce a step (NCCL on GPUs); cpu: once, on the CPU, the '
              'towers\' gradients averaged there (the tutorial); '
              'first_tower: once, on the first tower\'s device; replicated: '
              'one process, a copy on every tower\'s device, the gradients '
              'summed on each (NCCL on GPUs). Checkpoints hold one copy. '
              'Same math. auto: collective on GPUs, else cpu'),
    OPEN_PORTS,
]
CLUSTER = [
    _bool('sync_replicas', False,
          'synchronous: each step averages one batch\'s gradients from every '
          'worker, so N workers train like one batch of N x --batch_size; '
          'a dead or hung worker stops the run within '
          '--peer_timeout_secs. Default: asynchronous, each worker applying '
          'its own steps (a lost worker does not stop the others)'),
    _opt('peer_timeout_secs', type=positive_int, default=30,
         help='seconds after which a peer that does not answer (a dead '
              'parameter server, a hung worker in a synchronous step, a '
              'host that is not there) is an error'),
]
DIST = TRAINING + CLUSTER + [
    _opt('job_name', choices=('ps', 'worker'), default=None,
         help='this process\'s job: a parameter server holds the variables; '
              'a worker trains (worker 0 is the chief). Or TF_CONFIG'),
    _opt('task_index', type=int, default=0,
         help='this process\'s index in its job'),
    _opt('ps_hosts', default=None,
         help='comma-separated host:port of the parameter servers'),
    _opt('worker_hosts', default=None,
         help='comma-separated host:port of the workers, the chief first'),
    _bool('allow_public_addresses', False,
          'accept cluster addresses that are not loopback, private (10/8, '
          '172.16/12, 192.168/16, 100.64/10, fc00::/7) or link-local. '
          'TensorFlow\'s runtime authenticates nobody: on a public address '
          'anyone who reaches a port can run code on the machine'),
]
LAUNCH = TRAINING + CLUSTER + [
    _opt('workers', type=_at_most_processes, default=2,
         help='workers to start on this machine (the first is the chief)'),
    _opt('ps', type=processes, default=1,
         help='parameter servers to start on this machine; 0: none, the '
              'workers all-reduce their gradients instead (one copy of the '
              'variables each, synchronous)'),
    OPEN_PORTS,
]
EVAL = [
    DATA_DIR_OPTION,
    _opt('checkpoint_dir', default=TRAIN_DIR,
         help='the trainer\'s --train_dir, where checkpoints appear'),
    _opt('eval_dir', default=EVAL_DIR,
         help='where the precision summaries go'),
    _opt('eval_data', choices=defaults.EVAL_DATA, default=defaults.EVAL_DATA[0],
         help='evaluate on the test set or the training set'),
    _opt('num_examples', type=positive_int, default=None,
         help='examples to evaluate (default: all of them, 10,000 for the '
              'test set)'),
    _opt('batch_size', type=positive_int, default=defaults.EVAL_BATCH_SIZE,
         help='eval batch size, independent of training\'s (the tutorial '
              'used 128; the result does not depend on it)'),
    INPUT_PIPELINE,
    _opt('eval_interval_secs', type=positive_int,
         default=defaults.EVAL_INTERVAL_SECS,
         help='seconds between looks for new checkpoints'),
    _bool('run_once', False, 'evaluate the latest checkpoint once and exit'),
    _opt('eval_device', choices=defaults.EVAL_DEVICES,
         default=defaults.EVAL_DEVICES[0],
         help='cpu keeps eval off the GPU a trainer is using'),
] + MODEL + [TF_LOGS]
DATA = [
    _opt('data_dir', default=DATA_DIR, help='where cifar-10-batches-bin/ goes'),
    # Read from the environment when the program starts, not at import.
    _opt('archive', default=None,
         help='a local cifar-10-binary.tar.gz instead of downloading (also '
              'read from $CIFAR10_ARCHIVE)'),
    _opt('url', default=defaults.DATA_URL, help='where to download'),
    _opt('md5', default=defaults.ARCHIVE_MD5,
         help='expected md5 of the downloaded archive'),
]
PLOT_OPTIONS = [
    _opt('train_dir', default=TRAIN_DIR, help='the trainer\'s event files'),
    _opt('eval_dir', default=EVAL_DIR, help='the eval loop\'s event files'),
    _opt('out', default=PLOT, help='the PNG to write'),
]
PREDICT = [
    Positional('images', dict(
        nargs='+', metavar='IMAGE',
        help='image files (JPEG, PNG, GIF, BMP) or folders of them')),
    DATA_DIR_OPTION._replace(kwargs=dict(
        DATA_DIR_OPTION.kwargs, help='where the class names come from '
        '(its batches.meta.txt; CIFAR-10\'s names if it has none)')),
    _opt('checkpoint_dir', default=TRAIN_DIR,
         help='the run whose latest checkpoint classifies'),
    _opt('top', type=positive_int, default=3, help='classes shown per image'),
    # A switch, not a BOOL: `predict --json a.jpg` must not read a.jpg as
    # its value.
    _opt('json', action='store_true',
         help='one JSON document on stdout, for programs'),
] + MODEL + [TF_LOGS]
CONVERT = [
    _opt('src', required=True,
         help='a folder (or a .zip or .tar.gz of one) holding '
              'train/<class>/* and test/<class>/* images'),
    _opt('out', required=True,
         help='the data folder to make: OUT/cifar-10-batches-bin, usable as '
              '--data_dir'),
    _opt('seed', type=int, default=0, help='the fixed shuffle of the records'),
]
BOARD = [
    _opt('logdir', default='train_dirs',
         help='the folder of runs TensorBoard shows, side by side'),
    _opt('port', type=port, default=6006, help='the port it serves on'),
    _opt('host', default='127.0.0.1',
         help='the address it serves on; 0.0.0.0: every interface, so '
              'anyone who reaches it sees your runs (an SSH tunnel is '
              'safer: README)'),
]
BENCH = [
    _opt('data_dir', default=DATA_DIR,
         help='real data here if present, else synthetic records'),
    _opt('parts', type=names, default='all',
         help='comma-separated parts to run, from those listed above, or all'),
    _opt('configs', type=names, default='all',
         help='comma-separated training configurations, from those listed '
              'above, or all'),
    _opt('inputs', type=names, default='all',
         help='comma-separated input pipeline variants, from those listed '
              'above, or all'),
    _opt('evals', type=names, default='all',
         help='comma-separated eval configurations, from those listed '
              'above, or all'),
    _opt('steps', type=positive_int, default=200,
         help='timed training steps (slow configurations: fewer)'),
    _opt('warmup', type=int, default=30, help='untimed training steps first'),
    _opt('input_examples', type=positive_int, default=40000,
         help='examples dequeued in the input-alone measurement'),
    _opt('rounds', type=positive_int, default=2,
         help='times each configuration runs, alternating'),
    _opt('batch_size', type=positive_int, default=defaults.BATCH_SIZE,
         help='training examples per step (per tower)'),
    _opt('runs', type=names, default='baseline,default',
         help='comma-separated whole training runs for the sustained and '
              'accuracy parts, from those listed above, or all'),
    _opt('run_steps', type=positive_int, default=2000,
         help='sustained: steps timed by the wall clock, after '
              '--run_warmup steps'),
    _opt('run_warmup', type=positive_int, default=500,
         help='sustained: steps before the timing starts (queue warm-up, '
              'compilation)'),
    _opt('ready_steps', type=positive_int, default=15216,
         help='ready: the steps of the new run timed from the command to '
              'its last checkpoint (15,216: the tutorial\'s 0.80)'),
    _opt('original', default=None,
         help='a folder holding the original tutorial\'s cifar10_train.py '
              '(its code with the edits TensorFlow 2.21 needs), for the '
              'ready part\'s run `original`'),
    _opt('accuracy_steps', type=positive_int, default=15000,
         help='accuracy: steps to train before evaluating'),
    _opt('baseline', default=None,
         help='a checkout of another version of this project, whose '
              'cifar10_train the baseline run uses (for comparing two '
              'versions on one machine in one call)'),
    _opt('json', default=BENCH_JSON, help='where the results go'),
    _opt('worker', help=argparse.SUPPRESS),
    _opt('checkpoint_dir', help=argparse.SUPPRESS),
]

PROGRAMS = {
    'cifar10_train': TRAINING,
    'cifar10_multi_gpu_train': MULTI_GPU,
    'cifar10_dist_train': DIST,
    'cluster_launch': LAUNCH,
    'cifar10_eval': EVAL,
    'cifar10_data': DATA,
    'plot': PLOT_OPTIONS,
    'board': BOARD,
    'predict': PREDICT,
    'convert': CONVERT,
    'bench': BENCH,
}


class _Parser(argparse.ArgumentParser):
  """argparse's, with an error as one line: what was wrong, the option
  it was probably meant to be, and where the options are listed."""

  def error(self, message):
    known = [s for a in self._actions for s in a.option_strings
             if s.startswith('--')]
    meant = sorted({m for word in message.split() if word.startswith('--')
                    for m in difflib.get_close_matches(word.split('=')[0],
                                                       known, n=1)})
    self.exit(2, '%s: error: %s%s; --help lists the options\n' % (
        self.prog, message, ' (did you mean %s?)' % ', '.join(meant)
        if meant else ''))


class _Formatter(argparse.ArgumentDefaultsHelpFormatter,
                 argparse.RawDescriptionHelpFormatter):
  """Each option's default once: argparse's "(default: ...)", unless the
  default is None (the help then says what happens) or the help gives it."""

  def _get_help_string(self, action):
    if action.default is None or 'default' in (action.help or ''):
      return action.help
    return super(_Formatter, self)._get_help_string(action)


# --help in these groups, in this order; options not named here go under
# the first.
GROUPS = [
    ('data and run', ()),
    ('schedule', ('max_steps', 'log_frequency', 'eval_interval_secs',
                  'run_once')),
    ('checkpoints and eval', ('save_checkpoint_secs', 'save_checkpoint_steps',
                              'allow_changed_settings', 'checkpoint_dir',
                              'eval_dir', 'eval_data', 'num_examples',
                              'eval_device')),
    ('performance (the same math; each "auto" is decided for this '
     'machine)', ('steps_per_run', 'preprocess_on', 'xla',
                  'prefetch_to_device', 'compiled_loop', 'lrn',
                  'input_pipeline', 'input_threads', 'log_device_placement')),
    ('cluster', ('sync_replicas', 'peer_timeout_secs', 'job_name',
                 'task_index', 'ps_hosts', 'worker_hosts',
                 'allow_public_addresses', 'workers', 'ps',
                 'allow_open_ports')),
]


def _group_of(name):
  for title, names in GROUPS[1:]:
    if name in names:
      return title
  return GROUPS[0][0]


def add_options(p, options, groups=None):
  """Adds `options` to parser `p`; into `groups` ({title: argument group},
  by GROUPS) if given."""
  def where(name):
    return groups[_group_of(name)] if groups else p

  for option in options:
    if isinstance(option, Exclusive):
      group = where(option.options[0].name).add_mutually_exclusive_group()
      for o in option.options:
        group.add_argument('--' + o.name, **o.kwargs)
    elif isinstance(option, Positional):
      p.add_argument(option.name, **option.kwargs)
    else:
      where(option.name).add_argument('--' + option.name, **option.kwargs)


def parser(program, doc=None):
  """An ArgumentParser for `program` whose --help shows `doc` and every
  option with its default, grouped. No abbreviations: `--max_step` is an
  error, not --max_steps."""
  p = _Parser(description=doc, formatter_class=_Formatter,
              allow_abbrev=False)
  names = {o.name for o in _flat(PROGRAMS[program])
           if not isinstance(o, Positional)}
  groups = {}
  for title, _ in GROUPS:
    if title == GROUPS[0][0] or any(_group_of(n) == title for n in names):
      groups[title] = p.add_argument_group(title)
  add_options(p, PROGRAMS[program], groups)
  return p


def parse(program, argv, doc=None):
  """Parses `argv` as `program`'s flags; exits with status 2 on bad ones."""
  return parser(program, doc).parse_args(argv)


def _flat(options):
  for option in options:
    if isinstance(option, Exclusive):
      for o in option.options:
        yield o
    else:
      yield option


def config(program, **overrides):
  """`program`'s flags with their defaults, and `overrides` in code."""
  known = {o.name: o for o in _flat(PROGRAMS[program])}
  for name, value in overrides.items():
    if name not in known:
      raise TypeError('%s has no option %r' % (program, name))
    choices = known[name].kwargs.get('choices')
    if choices and value not in choices:
      raise ValueError('%s: expected one of %s, found %r' %
                       (name, ', '.join(choices), value))
  cfg = parse(program, [])
  for name, value in overrides.items():
    setattr(cfg, name, value)
  return cfg


def to_argv(cfg, options):
  """The command line that gives `cfg`'s values of `options` (for starting
  other programs with the same settings)."""
  argv = []
  for option in _flat(options):
    if not isinstance(option, Option):
      continue
    value = getattr(cfg, option.name)
    if value is None or option.kwargs.get('action') == 'store_true' and \
        not value:
      continue
    if option.kwargs.get('action') == 'store_true':
      argv.append('--' + option.name)
    elif isinstance(value, bool):
      argv.append('--%s=%s' % (option.name, 'true' if value else 'false'))
    else:
      argv += ['--' + option.name, str(value)]
  return argv


def training_config(**overrides):
  return config('cifar10_train', **overrides)


def multi_gpu_config(**overrides):
  return config('cifar10_multi_gpu_train', **overrides)


def eval_config(**overrides):
  return config('cifar10_eval', **overrides)
