"""Several training steps per session.run are the same math as one per run.

The trainers' graph (train_graph.build_graph) is fed a fixed sequence of
batches, so the same steps can be run three ways from the same initial
weights: K steps in one run of the in-graph loop, K runs of one step, and
the summary step followed by the loop. Every variable, moving average and
the global step must come out the same, with or without the staging area
that prefetches batches to the towers' devices, on one tower or two.
"""
import logging
import threading

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10_input
from cifar10_tutorial.cluster import processes
from cifar10_tutorial.cluster import worker
from cifar10_tutorial.core import defaults
from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import placement
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import train_graph
from cifar10_tutorial.shell import flags
from conftest import on_the_cpu
from test_model import TUTORIAL_VARIABLES

BATCH, K = 4, 5


def _fixed_queue(n, part=0, parts=1, raw=False):
  """An ExampleQueue holding `n` preprocessed examples, in a fixed order:
  of every `parts` consecutive batches of BATCH, the one numbered `part`
  (one process's share, when `parts` processes each take a batch). `raw`:
  uint8 32x32x3 images that the consumer distorts, as on a GPU."""
  rng = np.random.RandomState(3)
  if raw:
    images = rng.randint(0, 256, size=(n * parts, 32, 32, 3)).astype(np.uint8)
  else:
    images = rng.normal(size=(n * parts, 24, 24, 3)).astype(np.float32)
  labels = rng.randint(0, 10, n * parts).astype(np.int32)
  mine = (np.arange(n * parts) // BATCH) % parts == part
  images, labels = images[mine], labels[mine]
  with tf.device('/cpu:0'):
    queue = tf.FIFOQueue(n, [tf.as_dtype(images.dtype), tf.int32],
                         shapes=[images.shape[1:], []])
    fill = queue.enqueue_many([images, labels])
  return cifar10_input.ExampleQueue(
      queue, n, 0, defaults.EXAMPLES_PER_EPOCH_TRAIN, False,
      finish=cifar10_input.finish_raw if raw else None), fill


def _decay_steps(towers):
  """The step at which the learning rate drops tenfold."""
  batches_per_epoch = defaults.EXAMPLES_PER_EPOCH_TRAIN / (BATCH * towers)
  return int(batches_per_epoch * defaults.NUM_EPOCHS_PER_DECAY)


def _train(runs, towers, prefetch):
  """Runs `runs` (a list: 'summary', or a number of loop steps) from the
  same seeded initial weights, starting two steps before the learning rate
  decays (so the runs cross it); returns every global variable by name."""
  cfg = settings.resolve(flags.multi_gpu_config(
      batch_size=BATCH, preprocess_on='cpu', prefetch_to_device=prefetch,
      xla=False, steps_per_run=K), on_gpu=False)
  devices, cpus = machine.tower_devices(towers, 'cpu') if towers > 1 else (
      None, 1)
  with tf.Graph().as_default():
    tf.set_random_seed(7)
    queue, fill = _fixed_queue(BATCH * towers * (K + 1))
    graph = train_graph.build_graph(
        cfg, placement.for_towers(cfg.variable_update, devices), queue=queue)
    variables = {v.op.name: v for v in tf.global_variables()}
    with tf.Session(config=on_the_cpu(
        machine.session_config(cfg, cpus))) as sess:
      sess.run([tf.global_variables_initializer(),
                tf.local_variables_initializer(), fill])
      sess.run(graph.prime)
      sess.run(graph.global_step.assign(_decay_steps(towers) - 2))
      for run in runs:
        if run == 'summary':
          sess.run(graph.summary_step.train_op)
        else:
          done, losses = sess.run(graph.loop, {graph.run_length: run})
          assert done == run and np.isfinite(losses).all()
      return sess.run(variables)


@pytest.mark.parametrize('towers, prefetch', [(1, False), (1, True),
                                               (2, True)])
def test_k_steps_in_one_run_are_k_single_steps(towers, prefetch):
  together = _train([K], towers, prefetch)
  one_by_one = _train([1] * K, towers, prefetch)
  summary_first = _train(['summary', K - 1], towers, prefetch)
  expected = set(TUTORIAL_VARIABLES) | {
      n + '/ExponentialMovingAverage' for n in TUTORIAL_VARIABLES} | {
          'global_step'}
  assert set(together) == expected   # the checkpoint's names, once each
  assert together['global_step'] == _decay_steps(towers) - 2 + K
  start = _train([], towers, prefetch)
  for name, value in together.items():
    assert not np.array_equal(value, start[name]), name   # every one moved
    for other in (one_by_one, summary_first):
      np.testing.assert_allclose(other[name], value, rtol=1e-5, atol=1e-6,
                                 err_msg=name)


def _train_raw(runs, compiled, gpu=False):
  """`runs` loop runs of a raw queue's batches (distorted by the step, with
  stateless draws) from _weights() / 5, on the CPU or a `gpu`; every global
  variable, by name, and the runs' losses."""
  cfg = settings.resolve(flags.training_config(
      batch_size=BATCH, preprocess_on='device', prefetch_to_device=True,
      xla=compiled, compiled_loop=compiled, steps_per_run=K), on_gpu=gpu)
  with tf.Graph().as_default():
    queue, fill = _fixed_queue(BATCH * (3 * K + 1), raw=True)
    graph = train_graph.build_graph(cfg, queue=queue)
    assert cfg.compiled_loop is compiled   # what build_graph ran
    variables = {v.op.name: v for v in tf.global_variables()}
    # A fifth of _weights(): at their size the loss grows a hundredfold in
    # a few steps, and with it the rounding differences between XLA's
    # kernels and TensorFlow's.
    start = [variables[n + suffix].assign(v / 5) for n, v in _weights().items()
             for suffix in ('', '/ExponentialMovingAverage')]
    config = machine.session_config(cfg)
    with tf.Session(config=config if gpu else on_the_cpu(config)) as sess:
      sess.run([tf.global_variables_initializer(),
                tf.local_variables_initializer(), fill])
      sess.run(start)
      sess.run(graph.prime)
      losses = []
      for run in runs:
        done, ran = sess.run(graph.loop, {graph.run_length: run})
        assert done == run
        losses.extend(ran)
      return sess.run(variables), np.array(losses)


def test_a_compiled_loop_trains_as_the_graph_s_loop_does():
  # One XLA program for K steps, then a shorter run (the first batches of
  # its chunk), against the same steps in TensorFlow's loop, one a run:
  # the same batches, the same stateless draws, the same update.
  compiled, compiled_losses = _train_raw([K, K - 2], compiled=True)
  graph_loop, graph_losses = _train_raw([1] * (2 * K - 2), compiled=False)
  assert compiled['global_step'] == graph_loop['global_step'] == 2 * K - 2
  np.testing.assert_allclose(compiled_losses, graph_losses, rtol=1e-4)
  for name, value in compiled.items():
    np.testing.assert_allclose(graph_loop[name], value, rtol=1e-4, atol=1e-5,
                               err_msg=name)


def test_a_loop_that_cannot_compile_is_decided_once_and_said(caplog):
  # --compiled_loop true with the distortions on the CPU: the settings step
  # says why not in one line and decides false, which the graph, the loop
  # and config.json then read; nothing after it may change the settings.
  flag_values = flags.training_config(
      batch_size=BATCH, preprocess_on='cpu', prefetch_to_device=True,
      xla=True, compiled_loop=True, steps_per_run=K)
  with caplog.at_level(logging.INFO):
    cfg, place = settings.for_trainer(flag_values)
  assert cfg.compiled_loop is False
  assert ('not as one XLA program: distortions on the CPU (--preprocess_on '
          'cpu)') in caplog.text
  with pytest.raises(AttributeError):
    cfg.compiled_loop = True
  with tf.Graph().as_default():
    queue, _ = _fixed_queue(BATCH * 2)
    train_graph.build_graph(cfg, place, queue=queue)   # TensorFlow's loop
  with tf.Graph().as_default(), pytest.raises(ValueError):
    train_graph.build_graph(settings.replace(cfg, compiled_loop=True), place,
                            queue=_fixed_queue(BATCH * 2)[0])
  for needs, why in (({'steps_per_run': 1}, 'runs of one step'),
                     ({'prefetch_to_device': False}, 'no batches staged'),
                     ({'servers': True}, 'a parameter-server cluster')):
    cfg = settings.resolve(flags.training_config(
        compiled_loop=True, steps_per_run=K, prefetch_to_device=True,
        preprocess_on='device'), on_gpu=True)
    servers = needs.pop('servers', False)
    cfg = settings.replace(cfg, **needs)
    assert settings.why_not_compiled(cfg, placement.OneDevice(),
                                     servers).startswith(why)


def test_a_compiled_run_stages_no_more_batches_than_a_run_takes():
  # Runs end at each summary step (99 steps apart) and checkpoint step: a
  # chunk staged for more would be dequeued and dropped.
  def longest(**settings):
    return train_graph.longest_run(flags.training_config(**settings))
  assert longest(steps_per_run=100) == 99
  assert longest(steps_per_run=10) == 10
  assert longest(steps_per_run=100, save_checkpoint_steps=1) == 1
  assert longest(steps_per_run=100, save_checkpoint_steps=500) == 99


def test_a_run_names_the_step_whose_loss_is_not_finite():
  # A learning rate of 1e30 makes the weights explode within a few steps.
  cfg = settings.resolve(flags.training_config(
      batch_size=BATCH, preprocess_on='cpu', steps_per_run=10), False)
  with tf.Graph().as_default():
    tf.set_random_seed(7)
    queue, fill = _fixed_queue(BATCH * 20)
    graph = train_graph.build_graph(cfg, queue=queue)
    scale = [v for v in tf.global_variables()
             if v.op.name == 'softmax_linear/weights'][0]
    with tf.Session(config=on_the_cpu()) as sess:
      sess.run([tf.global_variables_initializer(),
                tf.local_variables_initializer(), fill])
      sess.run(scale.assign(scale * np.float32(1e30)))
      done, losses = sess.run(graph.loop, {graph.run_length: 10})
      step = sess.run(graph.global_step)
  # The run takes its 10 steps (on a GPU, waiting for each loss would stall
  # every step); the losses say where it went wrong, and the loop stops
  # there, saving nothing after it (test_train_loop.py).
  assert done == 10 and step == 10
  bad = np.flatnonzero(~np.isfinite(losses))
  assert bad.size and np.isfinite(losses[:bad[0]]).all()
  with pytest.raises(loop.LossDivergedError,
                     match=r'became \S+ at step %d$' % (7 + bad[0])):
    loop.check_losses(6, losses)


def test_gpu_memory_is_taken_as_needed_not_all_at_once():
  config = machine.session_config(settings.resolve(flags.training_config(),
                                                  on_gpu=True))
  assert config.gpu_options.allow_growth
  assert config.graph_options.optimizer_options.global_jit_level > 0


def test_auto_settings_follow_where_the_towers_are():
  gpu = settings.resolve(flags.training_config(), on_gpu=True)
  cpu = settings.resolve(flags.training_config(), on_gpu=False)
  assert (gpu.steps_per_run, gpu.xla, gpu.prefetch_to_device,
          gpu.preprocess_on) == (defaults.GPU_STEPS_PER_RUN, True, True,
                                 'device')
  assert (cpu.steps_per_run, cpu.xla, cpu.prefetch_to_device,
          cpu.preprocess_on) == (1, False, False, 'cpu')
  assert gpu.compiled_loop is True and cpu.compiled_loop is False
  # It needs the batches raw and staged on the GPU, and runs of steps.
  for needs in ({'preprocess_on': 'cpu'}, {'prefetch_to_device': False},
                {'steps_per_run': 1}, {'xla': False}):
    assert settings.resolve(flags.training_config(**needs),
                           on_gpu=True).compiled_loop is False, needs
  # The tutorial's per-example input distorts on the CPU, one record a call.
  assert settings.resolve(flags.training_config(
      input_pipeline='per_example'), on_gpu=True).preprocess_on == 'cpu'
  # What the user sets is kept.
  kept = settings.resolve(flags.training_config(steps_per_run=7, xla=False),
                         on_gpu=True)
  assert (kept.steps_per_run, kept.xla, kept.prefetch_to_device) == (
      7, False, True)


def _weights():
  """Fixed initial values for the network's variables, by name."""
  rng = np.random.RandomState(11)
  return {name: (rng.normal(size=shape) * 0.05).astype(np.float32)
          for name, shape in TUTORIAL_VARIABLES.items()}


def _two_ways(towers, batch, update, steps=3, tower_device='cpu'):
  """`steps` steps from _weights() on `towers` towers of `batch` (one tower:
  the single-device trainer), on `tower_device` ('gpu': real GPUs);
  every global variable afterwards, by name, and the names a checkpoint
  holds."""
  cfg = settings.resolve(flags.multi_gpu_config(
      batch_size=batch, preprocess_on='cpu', prefetch_to_device=True,
      xla=False, steps_per_run=steps, num_gpus=towers,
      variable_update=update or 'auto'), on_gpu=False)
  devices, cpus = (machine.tower_devices(towers, tower_device)
                   if towers > 1 else (None, 1))
  with tf.Graph().as_default():
    queue, fill = _fixed_queue(8 * (steps + 1))
    graph = train_graph.build_graph(
        cfg, placement.for_towers(cfg.variable_update, devices), queue=queue)
    variables = {v.op.name: v for v in tf.global_variables()}
    saved = sorted(v.op.name for v in graph.saved or variables.values())
    start = [variables[n + suffix].assign(v) for n, v in _weights().items()
             for suffix in ('', '/ExponentialMovingAverage')]
    config = machine.session_config(cfg, cpus)
    if tower_device == 'cpu':
      config = on_the_cpu(config)
    with tf.Session(config=config) as sess:
      sess.run([tf.global_variables_initializer(),
                tf.local_variables_initializer(), fill])
      sess.run(start)   # before prime, which copies them to any replicas
      sess.run(graph.prime)
      sess.run(graph.loop, {graph.run_length: steps})
      return sess.run(variables), saved


def _collective(replicas, steps=3):
  """`steps` steps of `replicas` processes (threads here, each with its
  own graph, session and loopback server, as worker.train builds them),
  each taking every replicas-th batch of BATCH, from _weights() given to
  the chief alone (the others start from its broadcast). Returns the
  chief's variables and saved names, and every replica's variables."""
  ports = processes.free_ports(replicas)
  role = worker.Role([], ['127.0.0.1:%d' % p for p in ports], 'worker', 0)
  # In one process, tasks cannot each have a GPU: on the CPU, as the
  # processes of a CPU machine would.
  spec = tf.train.ClusterSpec({'worker': role.workers})
  servers = [tf.train.Server(spec, 'worker', i,
                             config=on_the_cpu(worker._config(role)))
             for i in range(replicas)]
  results, errors = [None] * replicas, []

  def replica(i):
    try:
      cfg = settings.resolve(flags.training_config(
          batch_size=BATCH, preprocess_on='cpu', prefetch_to_device=True,
          xla=False, steps_per_run=steps), on_gpu=False)
      task = '/job:worker/replica:0/task:%d' % i
      with tf.Graph().as_default():
        queue, fill = _fixed_queue(BATCH * (steps + 1), i, replicas)
        with tf.device(task):
          graph = train_graph.build_graph(cfg, placement.Collective(
              i, replicas, task + '/device:CPU:0', task + '/device:CPU:0',
              timeout_secs=60), queue=queue)
        variables = {v.op.name: v for v in tf.global_variables()}
        start = [variables[n + suffix].assign(v) for n, v in
                 _weights().items()
                 for suffix in ('', '/ExponentialMovingAverage')]
        config = on_the_cpu(worker._config(role))
        config.device_filters.append(task)
        with tf.Session(servers[i].target, config=config) as sess:
          sess.run([tf.global_variables_initializer(),
                    tf.local_variables_initializer(), fill])
          if i == 0:
            sess.run(start)
          sess.run(graph.prime)   # the chief's variables, to all
          done, _ = sess.run(graph.loop, {graph.run_length: steps})
          assert done == steps
          results[i] = (sess.run(variables),
                        sorted(v.op.name for v in graph.saved or
                               variables.values()))
    except Exception as e:   # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=replica, args=(i,))
             for i in range(replicas)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(120)
  assert not errors, errors
  return results[0][0], results[0][1], [r[0] for r in results]


@pytest.mark.parametrize('update', ['cpu', 'first_tower', 'replicated',
                                    'collective'])
def test_two_towers_of_four_train_like_one_of_eight_in_every_mode(update):
  one, one_saved = _two_ways(1, 8, None)
  if update == 'collective':
    two, two_saved, every = _collective(2)
    for other in every[1:]:   # each process's copy got the same updates
      for name, value in two.items():
        np.testing.assert_array_equal(other[name], value, err_msg=name)
  else:
    two, two_saved = _two_ways(2, 4, update)
  assert two_saved == one_saved   # one copy of each, the tutorial's names
  for name, start in _weights().items():
    assert not np.array_equal(one[name], start), name   # it trained
  for name, value in one.items():
    np.testing.assert_allclose(two[name], value, rtol=2e-5, atol=1e-6,
                               err_msg=name)
  copies = {n for n in two if n.startswith('tower_1/')}
  assert bool(copies) == (update == 'replicated')
  for name in copies:   # every copy got exactly the same updates
    np.testing.assert_array_equal(two[name], two[name.split('/', 1)[1]])
