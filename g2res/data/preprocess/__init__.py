"""``g2res preprocess``: validate a G2Net-layout data set, whiten, bandpass, pack a cache.

Stages (each resumable; state lives in ``CACHE_DIR/.partial`` until the end):

1. read the label CSVs;
2. estimate the noise PSD per detector (Welch in float32, averaged over a seeded
   random subset of the label-0 training rows, or of all training rows, or read
   from a file);
3. one streaming pass over every sample file: worker threads each take a chunk of
   ``CHUNK`` files, read each file once, checksum (crc32) and check it, and on the
   CPU whiten + bandpass the chunk (one FFT pass, one torch thread per worker: the
   workers are the parallelism); on a GPU the main thread conditions whole batches.
   A writer thread appends the batches to the split's ``.npy`` array while the
   workers read the next one; progress is recorded after each batch. Without
   ``skip_bad`` the first bad file stops conditioning, the pass goes on checking
   so the error lists every bad file;
4. write ids, labels, ``psd.npz``, ``bad_files.csv`` and ``manifest.json``, then
   move everything into place (``manifest.json`` last).

An interrupted run resumes at the last finished batch and produces the same bytes
as an uninterrupted one.

Sharding: ``shard=(i, n)`` processes the ``i``-th of ``n`` contiguous slices of
each split's rows (CSV order) into a *shard directory*; every shard computes the
same PSD from the same seeded subset (or reads ``psd_source``), and
:func:`merge_shards` joins the shard directories into a cache with the same bytes
as a single run. The cache format is described in :mod:`g2res.data.cache`.

Modules, by stage: :mod:`~g2res.data.preprocess.reading` (checks and reading),
:mod:`~g2res.data.preprocess.psd` (PSD estimate), :mod:`~g2res.data.preprocess.stream`
(the streaming conditioning pass), :mod:`~g2res.data.preprocess.writer` (the atomic cache
writer); :mod:`~g2res.data.preprocess.build` runs them (:func:`preprocess`) and
:mod:`~g2res.data.preprocess.merge` joins shards (:func:`merge_shards`).
"""

from g2res.data.preprocess.build import preprocess
from g2res.data.preprocess.merge import merge_shards
from g2res.data.preprocess.psd import _conditioner, _estimate_psd
from g2res.data.preprocess.reading import (
    CHUNK,
    _check_config,
    _check_shard,
    _file_lines,
    _fingerprint,
    _in_order,
    _read_into,
    _sha256_file,
    _shard_rows,
    _torch_threads,
)
from g2res.data.preprocess.stream import _Interrupt, _Run
from g2res.data.preprocess.writer import (
    BAD_FILES,
    FILES_CHECKSUM,
    FORMAT,
    OUTPUTS,
    PARTIAL,
    SHARD_FORMAT,
    SHARD_OUTPUTS,
    STATE,
    _create_array,
    _finish_array,
    _install,
    _load_state,
    _manifest,
    _names,
    _npy_header,
    _prepare_out,
    _read_header,
    _save_npz,
    _save_state,
)

# the public names, and the helpers by their old names in the single module
__all__ = [
    "BAD_FILES",
    "CHUNK",
    "FILES_CHECKSUM",
    "FORMAT",
    "OUTPUTS",
    "PARTIAL",
    "SHARD_FORMAT",
    "SHARD_OUTPUTS",
    "STATE",
    "merge_shards",
    "preprocess",
    "_Interrupt",
    "_Run",
    "_check_config",
    "_conditioner",
    "_estimate_psd",
    "_check_shard",
    "_create_array",
    "_file_lines",
    "_fingerprint",
    "_finish_array",
    "_in_order",
    "_install",
    "_load_state",
    "_manifest",
    "_names",
    "_npy_header",
    "_prepare_out",
    "_read_header",
    "_read_into",
    "_save_npz",
    "_save_state",
    "_sha256_file",
    "_shard_rows",
    "_torch_threads",
]
