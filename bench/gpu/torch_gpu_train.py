#!/usr/bin/python3
# The tutorial's network and loop as a PyTorch user would port it to a GPU: the whole training
# set on the device, a shuffled permutation per epoch, batch 60, Adam 1e-3, eager. The anchor
# for trainer_bench --device=cuda in bench/gpu/gpu_check.sh. Prints seconds and test accuracy.
# usage: torch_gpu_train.py DATA_DIR EPOCHS   (DATA_DIR holds the four IDX .gz files)
import gzip, sys, time
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


root, epochs = sys.argv[1], int(sys.argv[2])
dev = torch.device("cuda")
torch.manual_seed(0)
x_train = torch.tensor(idx(f"{root}/train-images-idx3-ubyte.gz")).to(dev).unsqueeze(1)
y_train = torch.tensor(idx(f"{root}/train-labels-idx1-ubyte.gz")).to(dev).long()
x_test = torch.tensor(idx(f"{root}/t10k-images-idx3-ubyte.gz")).to(dev).unsqueeze(1)
y_test = torch.tensor(idx(f"{root}/t10k-labels-idx1-ubyte.gz")).to(dev).long()


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc1(x.reshape(x.shape[0], -1))


model = CNN().to(dev)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
torch.cuda.synchronize()
start = time.perf_counter()
n = x_train.shape[0]
for epoch in range(epochs):
    t0 = time.perf_counter()
    order = torch.randperm(n, device=dev)
    for b in range(0, n, 60):
        i = order[b:b + 60]
        loss = F.cross_entropy(model(x_train[i].float() / 255), y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    print(f"epoch {epoch + 1} {time.perf_counter() - t0:.3f}s loss {loss.item():.4f}", flush=True)
model.eval()
with torch.no_grad():
    correct = (model(x_test.float() / 255).argmax(1) == y_test).sum().item()
print(f"test accuracy {correct / len(y_test):.4f}")
print(f"training and evaluation {time.perf_counter() - start:.3f}s")
