"""The epoch plan, as the S3 gateway serves it (GET /BUCKET?x-clipstore-plan).

The request is signed with SigV4 like any S3 request, with botocore."""

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Iterator, Optional

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

PLAN_VERSION = 1


@dataclass(frozen=True)
class PlanItem:
    position: int    # in the epoch's global order: checkpoints count these
    key: str
    generation: int  # the generation the dataset pins: the object's versionId
    size: int
    member: int      # the member's position in the dataset


class PlanClient:
    """Fetches ranks' shares of epoch plans from an S3 gateway."""

    def __init__(self, endpoint: str, bucket: str, access_key: Optional[str] = None,
                 secret_key: Optional[str] = None, region: str = "us-east-1",
                 verify: Optional[str] = None, timeout: float = 60.0):
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.region = region
        self.timeout = timeout
        session = botocore.session.get_session()
        if access_key is not None:
            session.set_credentials(access_key, secret_key)
        self._credentials = session.get_credentials()
        if self._credentials is None:
            raise ValueError("no S3 credentials: give access_key and secret_key, or set AWS_ACCESS_KEY_ID")
        self._context = None
        if verify:
            import ssl
            self._context = ssl.create_default_context(cafile=verify)

    def page(self, dataset: str, seed: int, epoch: int, world_size: int, rank: int,
             start_offset: int = 0, pad: bool = False, drop_last: bool = False,
             page_start: int = 0, page_size: int = 10000) -> dict:
        """One page of a rank's share: the gateway's JSON answer."""
        query = [("x-clipstore-plan", ""), ("dataset", dataset), ("seed", str(seed)), ("epoch", str(epoch)),
                 ("world", str(world_size)), ("rank", str(rank)), ("from", str(start_offset)),
                 ("page-start", str(page_start)), ("page-size", str(page_size))]
        if pad:
            query.append(("pad", ""))
        if drop_last:
            query.append(("drop-last", ""))
        url = "%s/%s?%s" % (self.endpoint, urllib.parse.quote(self.bucket),
                            urllib.parse.urlencode(query, quote_via=urllib.parse.quote))
        req = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self.region).add_auth(req)
        http = urllib.request.Request(url, headers=dict(req.headers.items()), method="GET")
        try:
            with urllib.request.urlopen(http, timeout=self.timeout, context=self._context) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError("plan of dataset %s: HTTP %d: %s" % (dataset, e.code, e.read().decode(errors="replace"))) from None
        if body.get("version") != PLAN_VERSION:
            raise RuntimeError("plan of dataset %s: algorithm version %r, this loader reads version %d"
                               % (dataset, body.get("version"), PLAN_VERSION))
        return body

    def items(self, dataset: str, seed: int, epoch: int, world_size: int, rank: int,
              start_offset: int = 0, pad: bool = False, drop_last: bool = False) -> Iterator[PlanItem]:
        """Every item of a rank's share from start_offset on, in reading order."""
        page_start = 0
        while True:
            body = self.page(dataset, seed, epoch, world_size, rank, start_offset, pad, drop_last, page_start)
            for it in body["items"]:
                yield PlanItem(it["position"], it["key"], it["generation"], it["size"], it["member"])
            if not body.get("more"):
                return
            page_start = body["next"]
