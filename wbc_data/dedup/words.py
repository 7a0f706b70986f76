"""Bag of visual words over ORB keypoints: one short vector per image whose nearest neighbours are its candidate
copies, whatever the angle, shift or scale (Sivic & Zisserman's "Video Google" retrieval, with ORB's binary
descriptors as in DBoW2).

ORB descriptors are quantised to the nearest of ``K`` binary words (Hamming distance, OpenCV's brute-force
matcher); an image becomes ``sqrt(tf) * idf`` over the words, L2-normalised, projected on a fixed PCA basis
to ``dim`` dimensions and normalised again, so a dot product is a cosine similarity. The words, idf and basis were
fitted once on real PBC cells and BCCD fields (``benchmarks/dedup_words.py``) and ship with the package, so a
signature never depends on which other rows a run happens to see (and stays valid in the cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from wbc_data.dedup.kernels import nearest_words

WORDS_FILE = "orb_words.npz"


@dataclass(frozen=True)
class Embedder:
    words: np.ndarray  # (K, 32) uint8 binary visual words
    idf: np.ndarray  # (K,) float32
    mean: np.ndarray  # (K,) float32, PCA centre
    basis: np.ndarray  # (K, dim) float32, PCA components as columns

    @property
    def size(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return self.basis.shape[1]

    def counts(self, descriptors: np.ndarray) -> np.ndarray:
        """(K,) word counts of one image's ORB descriptors (nearest word by Hamming distance)."""
        if not len(descriptors):
            return np.zeros(self.size, np.float32)
        nearest = nearest_words(np.ascontiguousarray(descriptors, np.uint8).view(np.uint64), self.words_u64)
        return np.bincount(nearest, minlength=self.size).astype(np.float32)

    def counts_reference(self, descriptors: np.ndarray) -> np.ndarray:
        """:meth:`counts` through OpenCV's brute-force matcher (the reference the tests compare with)."""
        counts = np.zeros(self.size, np.float32)
        if len(descriptors):
            matches = cv2.BFMatcher(cv2.NORM_HAMMING).match(np.ascontiguousarray(descriptors, np.uint8), self.words)
            np.add.at(counts, np.fromiter((m.trainIdx for m in matches), np.int64, len(matches)), 1.0)
        return counts

    @cached_property
    def words_u64(self) -> np.ndarray:
        return np.ascontiguousarray(self.words, np.uint8).view(np.uint64)

    def weigh(self, counts: np.ndarray) -> np.ndarray:
        """``sqrt(tf) * idf``, L2-normalised, for (K,) or (n, K) counts."""
        v = np.sqrt(counts) * self.idf
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
        return v / np.where(norm == 0, 1.0, norm)

    def project(self, weighted: np.ndarray) -> np.ndarray:
        """PCA projection, L2-normalised (zero for an image without keypoints)."""
        empty = ~weighted.any(axis=-1, keepdims=True)
        v = (weighted - self.mean) @ self.basis
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
        return np.where(empty, 0.0, v / np.where(norm == 0, 1.0, norm)).astype(np.float32)

    def embed(self, descriptors: np.ndarray) -> np.ndarray:
        return self.project(self.weigh(self.counts(descriptors)))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, words=self.words, idf=self.idf, mean=self.mean, basis=self.basis.astype(np.float16))

    @classmethod
    def load(cls, path: Path) -> Embedder:
        with np.load(path) as data:
            return cls(data["words"], data["idf"].astype(np.float32), data["mean"].astype(np.float32),
                       data["basis"].astype(np.float32))  # fmt: skip


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The shipped vocabulary (``wbc_data/dedup/data/orb_words.npz``)."""
    with resources.as_file(resources.files("wbc_data.dedup") / "data" / WORDS_FILE) as path:
        return Embedder.load(path)


def fit_embedder(descriptor_sets: list[np.ndarray], size: int = 1024, dim: int = 128, seed: int = 0) -> Embedder:
    """Fit words (k-means on the descriptor bits, centres rounded to bits: squared Euclidean distance between bit
    vectors is their Hamming distance), idf and the PCA basis on a list of per-image ORB descriptor arrays."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import PCA

    everything = np.concatenate([d for d in descriptor_sets if len(d)])
    bits = np.unpackbits(everything, axis=1).astype(np.float32)
    kmeans = MiniBatchKMeans(size, random_state=seed, batch_size=8192, n_init=3, max_iter=200).fit(bits)
    words = np.packbits(kmeans.cluster_centers_ >= 0.5, axis=1)
    plain = Embedder(words, np.ones(size, np.float32), np.zeros(size, np.float32), np.eye(size, dtype=np.float32))
    counts = np.stack([plain.counts(d) for d in descriptor_sets])
    df = (counts > 0).sum(axis=0)
    idf = np.log((1 + len(counts)) / (1 + df)).astype(np.float32) + 1.0
    weighted = Embedder(words, idf, plain.mean, plain.basis).weigh(counts)
    pca = PCA(dim, random_state=seed).fit(weighted)
    return Embedder(words, idf, pca.mean_.astype(np.float32), pca.components_.T.astype(np.float32))
