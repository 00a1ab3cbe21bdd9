#!/usr/bin/env python3
"""Writes a small colour data set in the CIFAR-10 binary format: coloured squares, discs and crosses on
noisy backgrounds, 32x32, ten classes (colour x shape), with batches.meta.txt naming them. Pure Python, no
packages: it exists so the window can be shown training on colour images without a download.

usage: scripts/colour-shapes.py OUT_DIR [TRAIN_IMAGES] [TEST_IMAGES]
"""
import os
import random
import sys

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 70, 230), "yellow": (230, 210, 40),
           "magenta": (210, 60, 200)}
SHAPES = ["square", "disc"]
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]


def inside(shape, x, y, cx, cy, r):
    if shape == "square":
        return abs(x - cx) <= r and abs(y - cy) <= r
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def record(rng, label):
    colour, shape = CLASSES[label]
    rgb = COLOURS[colour]
    r = rng.randint(5, 10)
    cx, cy = rng.randint(r, 31 - r), rng.randint(r, 31 - r)
    base = [rng.randint(60, 160) for _ in range(3)]
    planes = [bytearray(1024) for _ in range(3)]
    for y in range(32):
        for x in range(32):
            hit = inside(shape, x, y, cx, cy, r)
            for c in range(3):
                value = rgb[c] if hit else base[c]
                planes[c][y * 32 + x] = max(0, min(255, value + rng.randint(-25, 25)))
    return bytes([label]) + bytes(planes[0]) + bytes(planes[1]) + bytes(planes[2])


def write(path, count, rng):
    with open(path, "wb") as out:
        for i in range(count):
            out.write(record(rng, i % len(CLASSES)))


def main():
    out = sys.argv[1]
    train = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    test = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    write(os.path.join(out, "data_batch_1.bin"), train, rng)
    write(os.path.join(out, "test_batch.bin"), test, rng)
    with open(os.path.join(out, "batches.meta.txt"), "w") as meta:
        meta.write("\n".join(f"{c} {s}" for c, s in CLASSES) + "\n")


if __name__ == "__main__":
    main()
