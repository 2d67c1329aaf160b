"""Strong scaling of a Gaussian kernel sum sharded over torch.distributed (Gloo CPU ranks), and the ring's model.

Usage: python benchmarks/bench_distributed.py [--points 40000] [--procs 1,2] [--threads 1] [--repeats 3]
For each process count P, P spawned ranks hold points / P points each (both the i- and the j-side) and compute
a_i = sum_j exp(-|x_i - x_j|^2) b_j over all points with group=. Each rank also times the two parts of one
ring step alone: its shard against one block (compute) and one block's exchange with its neighbours
(communication). Printed: the best time of each P, the speed-up over P = 1 and the model of a ring step

    bytes per step   = (n / P) * (D + 1) * dtype size          (one block of x and b travels to the next rank)
    compute per step = (n / P)^2 / pairs per second            (the rank's rows against the block)

with the communication hidden behind the compute while bytes / bandwidth + latency < compute, i.e. up to
P* = n * bandwidth / ((D + 1) * dtype size * pairs per second) (latency neglected), and the model's prediction
for --gpus GPUs of one node (bandwidth --link-gbs, throughput --gpu-pairs-per-s: assumptions, not measured here).
"""

import argparse
import datetime
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def best(fn, repeats, sync):
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def rank_main(rank, size, port, args, queue):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size,
                            timeout=datetime.timedelta(seconds=600))
    import pykeops
    from pykeops.torch import Genred

    pykeops.set_num_threads(args.threads)
    group = dist.group.WORLD
    rows = args.points // size + (rank < args.points % size)
    gen = torch.Generator().manual_seed(rank)
    x = torch.rand(rows, args.d, generator=gen)
    b = torch.randn(rows, 1, generator=gen)
    g = Genred("Exp(-SqDist(x,y))*b", [f"x=Vi({args.d})", f"y=Vj({args.d})", "b=Vj(1)"], axis=1)
    g(x, x, b, group=group)  # (compiles)
    g(x, x, b)

    def barrier():
        dist.barrier(group)

    total = best(lambda: g(x, x, b, group=group), args.repeats, barrier)
    compute = best(lambda: g(x, x, b), args.repeats, lambda: None)  # one ring step's compute
    comm = 0.0
    if size > 1:
        block = torch.cat([x.reshape(-1), b.reshape(-1)])
        incoming = torch.empty_like(block)  # (equal shards: the neighbour's block has the same size)
        nxt, prev = (rank + 1) % size, (rank - 1) % size

        def exchange():
            for w in dist.batch_isend_irecv([dist.P2POp(dist.isend, block, nxt), dist.P2POp(dist.irecv, incoming, prev)]):
                w.wait()

        comm = best(exchange, args.repeats, barrier)
    queue.put((rank, total, compute, comm, rows))
    dist.barrier(group)
    dist.destroy_process_group()


def run(size, args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=rank_main, args=(r, size, port, args, queue)) for r in range(size)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    results.sort()
    total = max(r[1] for r in results)  # (the group is done when its slowest rank is)
    compute = max(r[2] for r in results)
    comm = max(r[3] for r in results)
    return total, compute, comm, results[0][4]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=40_000, help="points over all ranks (n)")
    parser.add_argument("--d", type=int, default=3, help="dimension of the points (D)")
    parser.add_argument("--procs", default="1,2", help="process counts to time, e.g. 1,2")
    parser.add_argument("--threads", type=int, default=1, help="kernel threads per process")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measure (best kept)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs of one node for the prediction")
    parser.add_argument("--link-gbs", type=float, default=300.0,
                        help="assumed GPU-GPU bandwidth per direction, GB/s (NVLink-class)")
    parser.add_argument("--link-latency-us", type=float, default=20.0, help="assumed latency of one ring step, us")
    parser.add_argument("--gpu-pairs-per-s", type=float, default=1e12,
                        help="assumed Gaussian-sum throughput of one GPU, pairs/s (measure with bench_gpu.py)")
    args = parser.parse_args()
    dtype_size = 4  # float32
    print(f"Gaussian sum, n = {args.points} points, D = {args.d}, float32, {args.threads} thread(s) per process, "
          f"Gloo on loopback; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    print(f"{'P':>3} {'time (s)':>10} {'speed-up':>9} {'efficiency':>10} {'compute/step (s)':>17} "
          f"{'comm/step (s)':>14} {'bytes/step':>11} {'pairs/s/rank':>13}")
    base = None
    for size in map(int, args.procs.split(",")):
        total, compute, comm, rows = run(size, args)
        if size == 1:
            base = total
        speedup = base / total if base else float("nan")
        block_bytes = rows * (args.d + 1) * dtype_size
        print(f"{size:3d} {total:10.4f} {speedup:9.2f} {speedup / size:10.2f} {compute:17.5f} {comm:14.6f} "
              f"{block_bytes:11d} {rows * rows / compute:13.3e}", flush=True)
    # The model on GPUs: one step moves (n / P)(D + 1) s bytes while computing (n / P)^2 pairs.
    bw, lat, tput, P = args.link_gbs * 1e9, args.link_latency_us * 1e-6, args.gpu_pairs_per_s, args.gpus
    print(f"\nring model on {P} GPUs (assumed: {args.link_gbs:g} GB/s per link direction, {args.link_latency_us:g} us "
          f"per step, {tput:.1e} pairs/s per GPU)")
    print(f"communication hidden while n / P >= (D + 1) * s * throughput / bandwidth = "
          f"{(args.d + 1) * dtype_size * tput / bw:.0f} points per GPU (bandwidth) and n / P >= sqrt(latency * "
          f"throughput) = {(lat * tput) ** 0.5:.0f} (latency)")
    print(f"{'n':>12} {'bytes/step':>11} {'comm/step (s)':>14} {'compute/step (s)':>17} {'P* (hidden up to)':>18} "
          f"{'time on P (s)':>14} {'speed-up':>9}")
    for n in (10**5, 10**6, 10**7, 10**8):
        shard = n / P
        step_bytes = shard * (args.d + 1) * dtype_size
        t_comm, t_comp = step_bytes / bw + lat, shard * shard / tput
        p_star = n * bw / ((args.d + 1) * dtype_size * tput)
        t_ring = P * max(t_comp, t_comm)
        print(f"{n:12.0e} {step_bytes:11.3e} {t_comm:14.3e} {t_comp:17.3e} {p_star:18.0f} {t_ring:14.3e} "
              f"{(n * n / tput) / t_ring:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
