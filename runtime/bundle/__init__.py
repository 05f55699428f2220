"""Bundles on the box: manifest, signatures, verification, releases, atomic install with rollback, voice packs, doctor.

Layout of a bundle: docs/bundle-format.md. Layout of a box: `runtime/bundle/releases.py`. Technician procedure:
docs/field-guide.md.
"""
