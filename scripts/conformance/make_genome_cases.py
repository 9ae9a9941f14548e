"""Genome cases: a small FASTA and BED files, and the one-hot windows tangermeme 1.6's extract_loci
cuts from them, for Tests/LoomProductTests/GenomeInputTests.swift and the CLI tests.

    scripts/conformance/make_genome_cases       # uses .venv-bench (tangermeme 1.6), then runs this

The folder holds:
  genome.fa            four records, soft-masked (lowercase) runs, N runs, one IUPAC code, ragged last lines
  genome.fa.fai        its index, as pyfaidx writes it
  genome.fa.gz         the same bases, gzip (one stream: read from start to end)
  genome.fa.bgz        the same bases, bgzip (BGZF blocks of 200 bases), with .bgz.gzi and .bgz.fai
  seqs.fa              records of one length; ragged.fa: records of several lengths
  *.bed                regions (track, browser and # lines included); peaks.narrowPeak for summits
  <case>.npy           extract_loci's sequences, int8 (n, 4, L)
  <case>.mask.npy      which regions it kept (return_mask=True)
  cases.json           [{"name", "fasta", "bed", "length", "summits", "error"}]: error is the start of
                       tangermeme's message when it refuses the case
The cases are committed; CI does not need tangermeme.
"""
import gzip, json, os, struct, sys, zlib

import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "genome")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(11)


def bases(n, lower=(), ns=(), iupac=()):
    s = list(rng.choice(list("ACGT"), n))
    for a, b in lower:
        s[a:b] = [c.lower() for c in s[a:b]]
    for a, b in ns:
        s[a:b] = ["N" if i % 3 else "n" for i in range(a, b)]
    for i, c in iupac:
        s[i] = c
    return "".join(s)


def write_fasta(path, records, width):
    with open(path, "w") as f:
        for header, seq, w in records:
            f.write(">" + header + "\n")
            w = w or width
            for i in range(0, len(seq), w):
                f.write(seq[i:i + w] + "\n")


def fai(path):
    """The .fai samtools and pyfaidx write: name, length, offset, line bases, line bytes."""
    lines, out, offset = open(path, "rb").read().split(b"\n"), [], 0
    i = 0
    while i < len(lines):
        line = lines[i]
        offset += len(line) + 1
        i += 1
        if not line.startswith(b">"):
            continue
        name, start, length, lb = line[1:].split()[0].decode(), offset, 0, None
        while i < len(lines) and lines[i] and not lines[i].startswith(b">"):
            if lb is None:
                lb = len(lines[i])
            length += len(lines[i])
            offset += len(lines[i]) + 1
            i += 1
        out.append(f"{name}\t{length}\t{start}\t{lb}\t{lb + 1}\n")
    with open(path + ".fai", "w") as f:
        f.writelines(out)


def bgzip(src, dst, block=200):
    """BGZF (SAM spec, section 4.1): gzip members of at most 64 KiB, each with a BC extra field
    holding its size, an empty member at the end, and the .gzi of every block start after the first."""
    data, out, index = open(src, "rb").read(), bytearray(), []
    for u in range(0, len(data), block):
        if u:
            index.append((len(out), u))
        chunk = data[u:u + block]
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = c.compress(chunk) + c.flush()
        out += b"\x1f\x8b\x08\x04" + b"\0" * 4 + b"\0\xff" + struct.pack("<H", 6) + b"BC" + struct.pack("<HH", 2, len(body) + 25)
        out += body + struct.pack("<II", zlib.crc32(chunk), len(chunk))
    out += bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
    open(dst, "wb").write(out)
    with open(dst + ".gzi", "wb") as f:
        f.write(struct.pack("<Q", len(index)))
        for c, u in index:
            f.write(struct.pack("<QQ", c, u))


# The genome: chr1 with lowercase and N runs (60 per line), chr2 with an IUPAC R at 230 (50 per
# line), a chromosome named 3 (pandas reads it as an integer), and a record with a description.
genome = [
    ("chr1 soft-masked runs", bases(1000, lower=[(100, 180), (600, 640)], ns=[(0, 30), (450, 470)]), 60),
    ("chr2", bases(250, lower=[(10, 20)], iupac=[(230, "R")]), 50),
    ("3", bases(400, ns=[(390, 400)]), 70),
    ("chrM mitochondrion", bases(57), 60),
]
write_fasta(f"{OUT}/genome.fa", genome, 60)
fai(f"{OUT}/genome.fa")
with open(f"{OUT}/genome.fa", "rb") as f, gzip.GzipFile(f"{OUT}/genome.fa.gz", "wb", mtime=0) as g:
    g.write(f.read())
bgzip(f"{OUT}/genome.fa", f"{OUT}/genome.fa.bgz")
with open(f"{OUT}/genome.fa.fai") as f, open(f"{OUT}/genome.fa.bgz.fai", "w") as g:
    g.write(f.read())

open(f"{OUT}/regions.bed", "w").write(
    "track name=peaks\n"
    "browser position chr1:1-1000\n"
    "# a comment\n"
    "chr1\t100\t200\tpeak1\n"       # soft-masked
    "chr1\t0\t20\tstart\n"          # falls off the start for long windows
    "chr2\t100\t140\n"
    "3\t300\t320\n"
    "chr1\t980\t1000\tend\n"        # falls off the end
    "chr1\t440\t480\tNs\n"          # over an N run
    "chrM\t20\t30\n"
    "chr2\t0\t250\twhole\n"
    "chr1\t601\t602\n")
open(f"{OUT}/iupac.bed", "w").write("chr2\t200\t260\n")
open(f"{OUT}/missing.bed", "w").write("chr1\t100\t200\nchrX\t5\t10\nchrY\t1\t2\n")
open(f"{OUT}/none-fit.bed", "w").write("chrM\t0\t10\nchrM\t40\t57\n")
# narrowPeak: chrom start end name score strand signal p q summit
open(f"{OUT}/peaks.narrowPeak", "w").write(
    "chr1\t100\t300\tp1\t0\t.\t1\t1\t1\t37\n"
    "chr1\t500\t560\tp2\t0\t.\t1\t1\t1\t0\n"
    "3\t10\t390\tp3\t0\t.\t1\t1\t1\t333\n"
    "chr2\t150\t161\tp4\t0\t.\t1\t1\t1\t11\n")
open(f"{OUT}/bad-summit.narrowPeak", "w").write("chr1\t100\t300\tp1\t0\t.\t1\t1\t1\t250\n")

seqs = [(f"s{i}", bases(48, lower=[(5, 9)] if i == 1 else (), ns=[(20, 22)] if i == 2 else ()), 0) for i in range(5)]
write_fasta(f"{OUT}/seqs.fa", seqs, 20)
ragged = [(f"r{i}", bases(n), 0) for i, n in enumerate([40, 55, 41, 64])]
write_fasta(f"{OUT}/ragged.fa", ragged, 16)
# extract_loci reads a record file as a genome: one region (record, 0, length) per record.
for name, recs in [("seqs", seqs), ("ragged", ragged)]:
    open(f"{OUT}/{name}.records.bed", "w").write("".join(f"{h}\t0\t{len(s)}\n" for h, s, _ in recs))
    fai(f"{OUT}/{name}.fa")

cases = [
    ("regions-100", "genome.fa", "regions.bed", 100, False),
    ("regions-101", "genome.fa", "regions.bed", 101, False),
    ("regions-21", "genome.fa", "regions.bed", 21, False),
    ("summits-64", "genome.fa", "peaks.narrowPeak", 64, True),
    ("summits-65", "genome.fa", "peaks.narrowPeak", 65, True),
    ("iupac", "genome.fa", "iupac.bed", 40, False),
    ("missing", "genome.fa", "missing.bed", 20, False),
    ("none-fit", "genome.fa", "none-fit.bed", 40, False),
    ("bad-summit", "genome.fa", "bad-summit.narrowPeak", 20, True),
    ("seqs-48", "seqs.fa", "seqs.records.bed", 48, False),
    ("seqs-31", "seqs.fa", "seqs.records.bed", 31, False),
    ("ragged-40", "ragged.fa", "ragged.records.bed", 40, False),
]

from tangermeme.io import extract_loci  # noqa: E402

manifest = []
for name, fasta, bed, length, summits in cases:
    entry = {"name": name, "fasta": fasta, "bed": bed, "length": length, "summits": summits, "error": None}
    try:
        x, mask = extract_loci(f"{OUT}/{bed}", f"{OUT}/{fasta}", in_window=length, summits=summits, return_mask=True, n_jobs=1)
        np.save(f"{OUT}/{name}.npy", x.numpy().astype(np.int8))
        np.save(f"{OUT}/{name}.mask.npy", mask.numpy())
    except ValueError as e:
        entry["error"] = str(e)
    manifest.append(entry)
    print(name, entry["error"] or tuple(x.shape))
json.dump(manifest, open(f"{OUT}/cases.json", "w"), indent=1)
