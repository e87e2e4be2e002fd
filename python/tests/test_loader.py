"""Tests of the loader against a real cluster and S3 gateway.

test/s3/python_test.go starts them, makes the dataset and runs these with
the environment: CLIPSTORE_TEST_ENDPOINT, CLIPSTORE_TEST_BUCKET,
CLIPSTORE_TEST_DATASET, CLIPSTORE_TEST_MANIFEST (JSON: "clips", key ->
{generation, sha256, size} of every member at its pinned generation;
"plans": the Go CLI's plans, "W/R" -> [keys]) and AWS_* credentials."""

import hashlib
import json
import os
import subprocess
import sys
import unittest

import torch.utils.data  # noqa: F401  (the loader's DataLoader)

from clipstore import ClipDataset, PlanClient

ENDPOINT = os.environ["CLIPSTORE_TEST_ENDPOINT"]
BUCKET = os.environ["CLIPSTORE_TEST_BUCKET"]
DATASET = os.environ["CLIPSTORE_TEST_DATASET"]
with open(os.environ["CLIPSTORE_TEST_MANIFEST"]) as f:
    MANIFEST = json.load(f)
CLIPS = MANIFEST["clips"]
SEED, EPOCH = 3, 1


def dataset(rank, world, **kw):
    return ClipDataset(ENDPOINT, DATASET, BUCKET, seed=SEED, epoch=EPOCH, rank=rank, world_size=world, **kw)


def check(test, clip):
    want = CLIPS[clip.key]
    test.assertEqual(clip.generation, want["generation"], clip.key)
    test.assertEqual(hashlib.sha256(clip.data).hexdigest(), want["sha256"], "%s: bytes differ from its pinned generation" % clip.key)
    test.assertEqual(clip.attributes.get("vehicle-id"), want["vehicle"], clip.key)


class LoaderTest(unittest.TestCase):
    def test_plan_is_the_go_plan(self):
        """Python reads the plan the Go CLI printed, item for item."""
        pc = PlanClient(ENDPOINT, BUCKET)
        for wr, keys in MANIFEST["plans"].items():
            world, rank = map(int, wr.split("/"))
            got = [it.key for it in pc.items(DATASET, SEED, EPOCH, world, rank)]
            self.assertEqual(got, keys, "plan %s" % wr)

    def test_two_ranks_two_workers_exactly_once(self):
        """Two ranks, each a DataLoader of two workers, read every member
        exactly once, byte-identical at its pinned generation, each rank in
        its plan's order."""
        seen = {}
        for rank in range(2):
            order = [it.key for it in PlanClient(ENDPOINT, BUCKET).items(DATASET, SEED, EPOCH, 2, rank)]
            got = []
            for clip in dataset(rank, 2, prefetch=3).loader(num_workers=2):
                check(self, clip)
                seen[clip.key] = seen.get(clip.key, 0) + 1
                got.append(clip.key)
            self.assertEqual(got, order, "rank %d read out of its plan's order" % rank)
        self.assertEqual(sorted(seen), sorted(CLIPS))
        self.assertTrue(all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n != 1][:5])

    def test_killed_and_resumed_at_another_world_size(self):
        """A two-rank job killed (SIGKILL) mid-epoch resumes from its
        state_dict with three ranks and completes the epoch: every member
        exactly once over both runs."""
        out = os.path.join(os.environ.get("TMPDIR", "/tmp"), "clipstore-loader-first-run.json")
        child = subprocess.run([sys.executable, "-c", FIRST_RUN, out], env=os.environ, capture_output=True, text=True, timeout=300)
        self.assertEqual(child.returncode, -9, "the first run should die by SIGKILL: %s" % child.stderr[-2000:])
        with open(out) as f:
            first = json.load(f)
        self.assertEqual(len(first["keys"]), 2 * 123)
        self.assertEqual(first["state"]["offset"], 246)
        seen = {k: 1 for k in first["keys"]}
        for rank in range(3):
            ds = dataset(rank, 3)
            ds.load_state_dict(first["state"])
            for clip in ds.loader(num_workers=2):
                check(self, clip)
                seen[clip.key] = seen.get(clip.key, 0) + 1
        self.assertEqual(sorted(seen), sorted(CLIPS))
        self.assertTrue(all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n != 1][:5])

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            dataset(2, 2)
        with self.assertRaises(RuntimeError):
            list(PlanClient(ENDPOINT, BUCKET).items("no-such-dataset", SEED, EPOCH, 1, 0))


# The first run: two ranks step together (a training step each) for 123
# steps, save the state (rank 0's: the same offset for both), and die.
FIRST_RUN = r'''
import json, os, signal, sys
sys.path.insert(0, os.path.join(os.environ["CLIPSTORE_PYTHON"]))
from clipstore import ClipDataset
args = dict(seed=3, epoch=1, world_size=2)
ds = [ClipDataset(os.environ["CLIPSTORE_TEST_ENDPOINT"], os.environ["CLIPSTORE_TEST_DATASET"], os.environ["CLIPSTORE_TEST_BUCKET"], rank=r, **args) for r in range(2)]
keys = []
for step, clips in enumerate(zip(*(d.loader(num_workers=2) for d in ds))):
    keys += [c.key for c in clips]
    if step + 1 == 123:
        break
states = [d.state_dict() for d in ds]
assert states[0] == states[1], states
with open(sys.argv[1], "w") as f:
    json.dump({"keys": keys, "state": states[0]}, f)
os.kill(os.getpid(), signal.SIGKILL)
'''

if __name__ == "__main__":
    unittest.main()
