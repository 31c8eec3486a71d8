import type { Command } from './command.js';
import { flagString, parseArgs, parseBoolean } from './args.js';
import { UserError } from '../util/errors.js';

const HELP = `nanogpt train — train GPT-2 (from scratch, from pretrained weights, or resuming a snapshot)

Usage: nanogpt train [--config FILE] [--key=value ...]

The configuration has the keys of the original gpt2_train_cfg.yaml (data_dir, block_size, optimizer_config.*,
trainer_config.*) plus nanogpt-ts's own (init_from, model.*, seed, out_dir, threads, distributed.*). Every key can
be overridden on the command line with its dotted name. When <out_dir>/<snapshot_path> exists, training resumes
from it: settings that fix the model (block_size, init_from, model.* from scratch) must match the snapshot's, and
the log lists any other setting that changed. Ctrl-C writes a snapshot and stops; running the same command again
continues.

Options:
  --config FILE          YAML configuration (--config-name FILE, the original's spelling, works too)
  --<dotted.key>=VALUE   override one setting, e.g. --trainer_config.batch_size=8 --model.preset=gpt2-mini;
                         Hydra's spelling without dashes works too: trainer_config.batch_size=8. nanoGPT's flat
                         names (batch_size, n_layer, learning_rate) are answered with the key they mean here
  --fresh                start over even if out_dir holds a run: its snapshot, best model, metrics and report
                         are moved to <out_dir>/previous-<time>/ (never deleted)
  --init_from=resume     resume, and fail (exit 2) if there is no snapshot to resume (nanoGPT's spelling)
  --help                 this text

Distributed: start one process per rank with \`nanogpt launch\`, mpirun, Slurm or torchrun-style variables
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); gradients are averaged across ranks every step.

Examples:
  nanogpt train --config configs/gpt2_train_cfg.yaml
  nanogpt train --data_dir data --model.preset=gpt2-mini --block_size=128 --trainer_config.max_iters=200
  nanogpt train --init_from=gpt2 --data_dir data --block_size=256 --trainer_config.batch_size=4
  nanogpt launch --nproc_per_node 2 -- train --config configs/gpt2_train_cfg.yaml
`;

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a GPT-2 model (single process or one rank of a distributed run)',
  help: HELP,
  async run(argv) {
    const args = parseArgs(argv, { values: ['config', 'config_name'], allowUnknown: true }, 'train');
    const overrides = new Map<string, string>();
    // Hydra's override syntax (the original module's): `trainer_config.max_iters=200`, also with Hydra's `+`/`++`
    // (add / force-add), which mean the same here because every key already exists with a default.
    for (const p of args.positionals) {
      const hydra = /^\+{0,2}([A-Za-z_][\w.-]*)=(.*)$/s.exec(p);
      if (!hydra) {
        throw new UserError(`unexpected argument '${p}'`, 'settings are given as --key=value (or key=value, as with Hydra); see nanogpt train --help');
      }
      overrides.set(hydra[1]!.replace(/-/g, '_'), hydra[2]!);
    }
    const file = flagString(args, 'config') ?? flagString(args, 'config_name');
    let fresh = false;
    for (const [k, v] of args.flags) {
      if (k === 'config' || k === 'config_name') continue;
      if (k === 'fresh') {
        fresh = v === true || parseBoolean(String(v), '--fresh');
        continue;
      }
      overrides.set(k, v === true ? 'true' : String(v));
    }
    const { loadConfig } = await import('../train/config.js');
    const config = loadConfig({ file, overrides });
    const { runTraining } = await import('../train/run.js');
    const result = await runTraining(config, { fresh });
    return result.interrupted ? 130 : 0;
  },
};
