"""Host<->accelerator link presets, for converting bytes moved into transfer time.

Bandwidths are the usual per-direction peak figures: PCIe 4.0 x16 = 16 GT/s × 16 lanes with 128b/130b encoding
≈ 31.5 GB/s (quoted as 32 GB/s); PCIe 5.0 x16 ≈ 63 GB/s (64 GB/s); NVLink-C2C (Grace Hopper) 900 GB/s total,
450 GB/s per direction. Transfers are assumed serial on one link (no overlap with compute).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    """A named link with its per-direction bandwidth in GB/s (10^9 bytes per second)."""

    name: str
    gb_per_s: float

    def seconds(self, n_bytes: int | float) -> float:
        """Time to move ``n_bytes`` over this link."""
        return float(n_bytes) / (self.gb_per_s * 1e9)


LINKS = {link.name: link for link in (Link("pcie4-x16", 32.0), Link("pcie5-x16", 64.0), Link("nvlink-c2c", 450.0))}


def get_link(name: str) -> Link:
    """The preset called ``name``; raises ValueError listing the presets."""
    try:
        return LINKS[name]
    except KeyError:
        raise ValueError(f"unknown link {name!r}; valid: {', '.join(LINKS)}") from None
