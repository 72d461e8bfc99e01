"""PyTorch side of `dtrain bench step` and `dtrain bench allreduce` (run only when torch imports).

Each subcommand prints one JSON object as the last line of stdout (src/bench/torch.ts reads it):
  state     --size S                          state_dict names/shapes and the trainable parameter count
  step      --size S --batch B --steps N      ms per SGD training step on one thread
  allreduce --workers N --bytes B,... --iters I --warmup W   gloo all_reduce times per rank
"""
import argparse
import json
import os
import socket
import sys
import time

import torch

from shufflenetv2 import ShuffleNetV2


def state(args):
    model = ShuffleNetV2(args.size)
    entries = [{'name': k, 'shape': list(v.shape)} for k, v in model.state_dict().items()]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {'entries': entries, 'params': params}


def step(args):
    # One thread, like dtrain's wasm backend; the recipe is the seed's (SGD, CrossEntropy, train mode).
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ShuffleNetV2(args.size).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(args.batch, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch,))
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), labels).backward()
        optimizer.step()
        if i >= args.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'times': times}


def allreduce_rank(rank, args, port):
    import torch.distributed as dist

    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=args.workers)
    barrier = torch.zeros(1)
    sizes = []
    for nbytes in args.bytes:
        # Every rank holds its rank number, as in dtrain's bench: the mean (N-1)/2 is exact in float32.
        data = torch.full((nbytes // 4,), float(rank), dtype=torch.float32)
        times = []
        for i in range(args.warmup + args.iters):
            dist.all_reduce(barrier)  # lines the ranks up, as dtrain's bench does
            t0 = time.perf_counter()
            dist.all_reduce(data, op=dist.ReduceOp.SUM)
            data.div_(args.workers)
            if i >= args.warmup:
                times.append((time.perf_counter() - t0) * 1000)
        expected = (args.workers - 1) / 2
        if not bool((data == expected).all()):
            raise RuntimeError(f'rank {rank}: gloo all_reduce gave {data[data != expected][0].item()}, expected {expected}')
        all_times = [torch.zeros(args.iters, dtype=torch.float64) for _ in range(args.workers)]
        dist.all_gather(all_times, torch.tensor(times, dtype=torch.float64))
        sizes.append({'bytes': nbytes, 'times': [t.tolist() for t in all_times]})
    dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({'torch': torch.__version__, 'sizes': sizes}), flush=True)


def allreduce(args):
    import torch.multiprocessing as mp

    os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(allreduce_rank, args=(args, port), nprocs=args.workers, join=True)
    return None  # rank 0 prints the result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('state')
    p.add_argument('--size', type=float, required=True)
    p = sub.add_parser('step')
    p.add_argument('--size', type=float, required=True)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p = sub.add_parser('allreduce')
    p.add_argument('--workers', type=int, required=True)
    p.add_argument('--bytes', type=lambda s: [int(b) for b in s.split(',')], required=True)
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    args = parser.parse_args()
    if args.command in ('state', 'step'):
        args.size = {0.5: 0.5, 1.0: 1, 1.5: 1.5, 2.0: 2}[args.size]
    result = {'state': state, 'step': step, 'allreduce': allreduce}[args.command](args)
    if result is not None:
        print(json.dumps(result), flush=True)


if __name__ == '__main__':
    sys.exit(main())
