"""Make a bitsandbytes wheel small enough to travel with the working tree to the GPU machine (64 MiB in all).

    pip download --no-deps --only-binary=:all: --platform manylinux_2_24_x86_64 --python-version 3.12 bitsandbytes -d /tmp/bnb
    python3 tools/slim_wheel.py /tmp/bnb/bitsandbytes-*.whl --keep cuda130 --out .whl/

The wheel (about 43 MB) carries one native library per CUDA and ROCm version; the machine needs only the one its torch
was built for (`torch.version.cuda`: 13.0 there, so `cuda130`). This keeps every other file, drops the other
`libbitsandbytes_*` libraries, and rewrites RECORD to match, so pip installs it like the original (about 5 MB).
"""
import argparse, re, zipfile
from pathlib import Path

def slim(src: Path, keep: list[str], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / src.name
    lib = re.compile(r'libbitsandbytes_(\w+?)\.(so|dll|dylib)$')
    dropped = set()
    with zipfile.ZipFile(src) as zin:
        for i in zin.infolist():
            m = lib.search(i.filename)
            if m and m.group(1) not in keep: dropped.add(i.filename)
        if not any(lib.search(n) and n not in dropped for n in zin.namelist()):
            raise SystemExit(f'{src.name}: no library matches --keep {keep}; it has '
                             f'{sorted(lib.search(n).group(1) for n in zin.namelist() if lib.search(n))}')
        with zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED) as zout:
            for i in zin.infolist():
                if i.filename in dropped: continue
                data = zin.read(i.filename)
                if i.filename.endswith('.dist-info/RECORD'):
                    data = ''.join(l for l in data.decode().splitlines(True) if l.split(',')[0] not in dropped).encode()
                zout.writestr(i, data)
    print(f'{dst}: {dst.stat().st_size / 2**20:.1f} MiB (from {src.stat().st_size / 2**20:.1f} MiB; dropped {len(dropped)} libraries)')
    return dst

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('wheel', type=Path)
    ap.add_argument('--keep', nargs='+', default=['cuda130'], help='library suffixes to keep (e.g. cuda130 cuda128)')
    ap.add_argument('--out', type=Path, default=Path('.whl'))
    a = ap.parse_args()
    slim(a.wheel, a.keep, a.out)
