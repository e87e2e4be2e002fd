"""ClipDataset: a rank's share of an epoch of a clipstore dataset, as a
torch IterableDataset, read through the S3 gateway.

Each rank reads its share of the epoch's global order (the gateway's plan);
DataLoader workers split the share by interleaving (worker k of K takes the
share's items k, k+K, ...), which DataLoader's round-robin delivers back in
the share's order. Each worker keeps at most ``prefetch`` clips in flight.
Iterate through ``ClipDataset.loader(...)`` (a DataLoader that counts what
it delivered) to make ``state_dict()`` exact: it names the global offset
every rank has passed when the ranks step together (a training step), and
``load_state_dict()`` resumes there, at the same or another world size,
with every clip of the epoch exactly once."""

import collections
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

import boto3
from botocore.config import Config

from .plan import PLAN_VERSION, PlanClient

try:
    import torch.utils.data as _tud
    _Base = _tud.IterableDataset
except ImportError:  # usable without torch, as a plain iterable
    _tud = None
    _Base = object


@dataclass
class Clip:
    key: str
    generation: int
    position: int  # in the epoch's global order
    size: int
    data: bytes = field(repr=False)
    # The clip's attributes as S3 returns them (its x-amz-meta-* without
    # the prefix): the capture attributes vehicle-id, camera,
    # capture-start, capture-end and tags, and the writer's metadata.
    attributes: Dict[str, str] = field(default_factory=dict)
    content_type: str = ""

    def fileobj(self) -> io.BytesIO:
        return io.BytesIO(self.data)


class ClipDataset(_Base):
    def __init__(self, endpoint: str, dataset: str, bucket: str, seed: int = 0, epoch: int = 0,
                 rank: int = 0, world_size: int = 1, access_key: Optional[str] = None,
                 secret_key: Optional[str] = None, region: str = "us-east-1", verify: Optional[str] = None,
                 prefetch: int = 4, pad: bool = False, drop_last: bool = False,
                 transform: Optional[Callable[[Clip], Any]] = None):
        if not 0 <= rank < world_size:
            raise ValueError("rank %d of a world of %d" % (rank, world_size))
        if pad and drop_last:
            raise ValueError("pad and drop_last: give one")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self.endpoint, self.dataset, self.bucket = endpoint, dataset, bucket
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        self.access_key, self.secret_key, self.region, self.verify = access_key, secret_key, region, verify
        self.prefetch, self.pad, self.drop_last, self.transform = prefetch, pad, drop_last, transform
        self._from = 0      # the global offset this epoch resumes at
        self._consumed = 0  # clips the loader delivered since

    # ---- resumption

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning."""
        self.epoch, self._from, self._consumed = epoch, 0, 0

    def state_dict(self) -> Dict[str, Any]:
        """Where this rank is: valid for the job when every rank has
        delivered the same count (they step together)."""
        return {"plan_version": PLAN_VERSION, "dataset": self.dataset, "seed": self.seed, "epoch": self.epoch,
                "world_size": self.world_size, "offset": self._from + self._consumed * self.world_size}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Resume at a state_dict's offset (the world size may differ)."""
        if state.get("plan_version") != PLAN_VERSION or state.get("dataset") != self.dataset or state.get("seed") != self.seed:
            raise ValueError("the state is of another plan (version, dataset or seed): %r" % (state,))
        self.epoch, self._from, self._consumed = state["epoch"], state["offset"], 0

    def loader(self, num_workers: int = 0, **kwargs):
        """A DataLoader over this dataset (one clip per item) that counts
        what it delivered, for state_dict()."""
        if _tud is None:
            raise RuntimeError("torch is not installed")
        kwargs.setdefault("batch_size", None)
        dl = _tud.DataLoader(self, num_workers=num_workers, **kwargs)
        return _CountingLoader(self, dl)

    # ---- iteration

    def _plan(self):
        return PlanClient(self.endpoint, self.bucket, self.access_key, self.secret_key, self.region, self.verify)

    def _s3(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            verify=self.verify, config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                                              max_pool_connections=max(10, self.prefetch)))

    def _fetch(self, s3, item) -> Clip:
        resp = s3.get_object(Bucket=self.bucket, Key=item.key, VersionId=str(item.generation))
        body = resp["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        if len(data) != item.size:
            raise IOError("%s at generation %d: read %d bytes, the dataset says %d" % (item.key, item.generation, len(data), item.size))
        clip = Clip(item.key, item.generation, item.position, item.size, data, dict(resp.get("Metadata") or {}),
                    resp.get("ContentType") or "")
        return self.transform(clip) if self.transform else clip

    def __iter__(self):
        worker = _tud.get_worker_info() if _tud is not None else None
        k, n = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        items = list(self._plan().items(self.dataset, self.seed, self.epoch, self.world_size, self.rank,
                                        self._from, self.pad, self.drop_last))[k::n]
        s3 = self._s3()
        try:
            with ThreadPoolExecutor(max_workers=self.prefetch) as pool:
                inflight = collections.deque()
                it = iter(items)
                for item in it:
                    inflight.append(pool.submit(self._fetch, s3, item))
                    if len(inflight) >= self.prefetch:
                        break
                for item in it:
                    yield inflight.popleft().result()
                    inflight.append(pool.submit(self._fetch, s3, item))
                while inflight:
                    yield inflight.popleft().result()
        finally:
            s3.close()


class _CountingLoader:
    """A DataLoader that counts the clips it delivered into its dataset."""

    def __init__(self, ds: ClipDataset, dl):
        self.ds, self.dl = ds, dl

    def __iter__(self):
        for clip in self.dl:
            self.ds._consumed += 1
            yield clip

    def __len__(self):
        raise TypeError("a ClipDataset's length is the plan's: use PlanClient.page")
