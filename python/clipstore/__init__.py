"""Training loaders for clipstore datasets.

A dataset is a frozen, named list of clips (``clipstore dataset create``);
an epoch plan is a pure function of (dataset, seed, epoch, world size, rank)
that the S3 gateway serves, so that every rank of a job reads its share of
the same global order, and a crashed job resumes exactly where it stopped.

    from clipstore import ClipDataset
    ds = ClipDataset("http://127.0.0.1:9000", "rain-front-v1", bucket="fleet",
                     seed=7, rank=rank, world_size=world)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4)
"""

from .plan import PlanClient, PlanItem
from .loader import ClipDataset, Clip

__all__ = ["ClipDataset", "Clip", "PlanClient", "PlanItem"]
