#!/usr/bin/env node
// Tells binding.gyp where libtorch lives. `LIBTORCH=<dir>` (an official libtorch zip, or a Python torch install's
// `torch/` directory — both have include/ and lib/) wins; otherwise Debian's libtorch-dev in the system paths.
// Usage: node scripts/torch-paths.mjs include|libdir|ldflags|defines|describe
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

function fail(msg) {
  process.stderr.write(`torch-paths: ${msg}\n`);
  process.exit(1);
}

function systemLibDir() {
  const candidates = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'];
  return candidates.find((d) => existsSync(path.join(d, 'libtorch_cpu.so')) || existsSync(path.join(d, 'libtorch.so')));
}

function locate() {
  const env = process.env.LIBTORCH;
  if (env) {
    const root = path.resolve(env);
    const inc = path.join(root, 'include');
    const lib = path.join(root, 'lib');
    if (!existsSync(path.join(inc, 'ATen', 'ATen.h'))) fail(`LIBTORCH=${env} has no include/ATen/ATen.h; point it at an unpacked libtorch zip or a Python torch package directory`);
    if (!existsSync(lib)) fail(`LIBTORCH=${env} has no lib/ directory`);
    return { source: `LIBTORCH=${root}`, includes: [inc, path.join(inc, 'torch', 'csrc', 'api', 'include')], libdir: lib, rpath: true };
  }
  const libdir = systemLibDir();
  if (!existsSync('/usr/include/ATen/ATen.h') || !libdir) {
    fail('libtorch not found: install Debian\'s libtorch-dev (scripts/setup.sh does) or set LIBTORCH=<dir with include/ and lib/>');
  }
  return { source: 'system (libtorch-dev)', includes: ['/usr/include', '/usr/include/torch/csrc/api/include'], libdir, rpath: false };
}

/** libtorch built with the pre-C++11 string ABI (pip wheels before 2.7, "pre-cxx11" zips) needs the same setting here. */
function cxx11Abi(libdir) {
  const lib = ['libc10.so'].map((f) => path.join(libdir, f)).find(existsSync);
  if (!lib) return 1;
  try {
    const syms = execFileSync('nm', ['-D', '--defined-only', lib], { encoding: 'utf8', maxBuffer: 256 << 20 });
    return syms.includes('__cxx11') ? 1 : 0;
  } catch {
    return 1;
  }
}

const where = locate();
const what = process.argv[2];
switch (what) {
  case 'include':
    process.stdout.write(where.includes.join(' '));
    break;
  case 'libdir':
    process.stdout.write(where.libdir);
    break;
  case 'ldflags': {
    const flags = [`-L${where.libdir}`, '-Wl,--no-as-needed', '-ltorch', '-ltorch_cpu', '-lc10'];
    if (existsSync(path.join(where.libdir, 'libtorch_cuda.so'))) flags.push('-ltorch_cuda', '-lc10_cuda');
    flags.push('-Wl,--as-needed');
    // at::parallel_for is inline (ATen/ParallelOpenMP.h): compiled without OpenMP, every loop of ours that uses it
    // ran on one thread (fused attention took the same time with 1 and 2 threads). binding.gyp compiles with
    // -fopenmp; this links the same OpenMP runtime libtorch uses (libgomp), so both share one thread pool.
    flags.push('-fopenmp');
    if (where.rpath) flags.push(`-Wl,-rpath,${where.libdir}`);
    process.stdout.write(flags.join(' '));
    break;
  }
  case 'defines':
    process.stdout.write(`_GLIBCXX_USE_CXX11_ABI=${cxx11Abi(where.libdir)}`);
    break;
  case 'describe':
    process.stdout.write(`${where.source}: include ${where.includes[0]}, lib ${where.libdir}\n`);
    break;
  default:
    fail('usage: torch-paths.mjs include|libdir|ldflags|defines|describe');
}
