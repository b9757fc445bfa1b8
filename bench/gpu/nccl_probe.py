#!/usr/bin/python3
# Whether two ranks can all-reduce over NCCL on this machine's GPUs: each rank takes GPU
# LOCAL_RANK % count (one GPU: both share it, which NCCL refuses as a duplicate GPU) and
# all-reduces its rank + 1. Prints the sum or the error. Started by gpu_check.sh through
# `python3 -m torch.distributed.run --nproc_per_node=2`.
import os
import torch
import torch.distributed as dist

rank = int(os.environ["RANK"])
device = torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
torch.cuda.set_device(device)
print(f"rank {rank}: nccl available {dist.is_nccl_available()}, "
      f"nccl {torch.cuda.nccl.version()}, {device}", flush=True)
try:
    dist.init_process_group("nccl", device_id=device)
    value = torch.tensor([rank + 1.0], device=device)
    dist.all_reduce(value)
    torch.cuda.synchronize()
    print(f"rank {rank}: all_reduce over NCCL gives {value.item()}", flush=True)
    dist.destroy_process_group()
except Exception as error:  # The point is to print it.
    print(f"rank {rank}: NCCL failed: {type(error).__name__}: {str(error)[:400]}", flush=True)
