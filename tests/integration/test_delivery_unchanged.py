"""What a run sends and records on seeded data is exactly what it was before the issue 14 rework.

Issue 14 replaced the machinery under every stage (COPY extracts, Arrow staging under AES-GCM,
vectorised quality and privacy, the compact subject register, parallel encryption, the SFTP
read-ahead) and promised that nothing about what is sent, recorded or checked would change. This
test holds that promise: flow A (PostgreSQL, split into several delivered files; the sample's
policy blocks a night with defects, which the quality tests cover) and flow B (CSV, with consent
withdrawals and opt-outs) run on seeded data under a fixed pseudonym key, and a fingerprint of
everything that matters is compared with the one the code before the rework made.

``GOLDEN`` was made by running this file against commit 13756f9 (the last commit before issue 14)
with ``PRINT_GOLDEN=1``. The encrypted bytes differ every run (fresh session keys, signature times),
so the fingerprint covers what the recipient decrypts, the manifest's content without its run-specific
values, and the ledger's entries' content (quality, privacy, disclosure subjects), not ciphertext.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.integration.conftest import LOGICAL_DATE
from transfers.devkit import synthetic
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

#: A fixed test key (not a secret): pseudonyms must come out the same before and after.
PSEUDONYM_KEY = "golden-pseudonym-key-issue-14"

#: Made by the code before the rework (commit 13756f9) on this seeded night; see the module docstring.
GOLDEN: dict[str, object] = json.loads(r"""
{
 "A": {
  "disclosure": {
   "fields": [
    "referral_id",
    "nhs_number",
    "date_of_birth",
    "postcode",
    "referral_date",
    "risk_level",
    "category"
   ],
   "pseudonym_key_id": "mash-2026-04",
   "rows": 2500,
   "subjects": {
    "subjects": 2495,
    "subjects_sha256": "99148100825a208287b35abbb768d48b6c552843d4d8313fe6fa00058694e4d3"
   }
  },
  "files": [
   "mash-referrals_A_2026-11-25_part001of003.csv.pgp",
   "mash-referrals_A_2026-11-25_part002of003.csv.pgp",
   "mash-referrals_A_2026-11-25_part003of003.csv.pgp"
  ],
  "manifest": {
   "destroy_by": "2032-11-25",
   "fields": [
    {
     "name": "referral_id",
     "share": "keep"
    },
    {
     "name": "nhs_number",
     "share": "pseudonymise"
    },
    {
     "name": "date_of_birth",
     "share": "generalise",
     "to": "year"
    },
    {
     "name": "postcode",
     "share": "generalise",
     "to": "district"
    },
    {
     "name": "referral_date",
     "share": "keep"
    },
    {
     "name": "risk_level",
     "share": "keep"
    },
    {
     "name": "category",
     "share": "keep"
    }
   ],
   "file_rows": [
    1000,
    1000,
    500
   ],
   "flow": "A",
   "formula_escape": true,
   "recipient": "south-yorkshire-police",
   "rows": 2500,
   "sender": "rotherham-childrens-services"
  },
  "plaintext_sha256": [
   "f3f75ed0c6d52713eecc1ab2db807132d1f81dbac8a7e3fc3a82e23448f0b578",
   "84e7038e090143396f75ac1acb6c98a38c3c083c90aa8b005c4c2b99606ddede",
   "db83c51c74acf98cc4d891816e776c68861465419cf124f38e7123a05c5805e9"
  ],
  "privacy": {
   "basis": "statutory",
   "excluded": {},
   "k": {
    "groups": 100,
    "k": 2,
    "min_k": 1,
    "on_failure": "warn",
    "passed": true,
    "quasi_identifiers": [
     "date_of_birth",
     "postcode"
    ],
    "rows": 2500
   },
   "pseudonym_key_id": "mash-2026-04",
   "rows_screened": 2500,
   "rows_sent": 2500
  },
  "quality": {
   "agreement": "mash-referrals",
   "blocked": [],
   "dimensions": {
    "accuracy": {
     "checks": 6,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 6,
     "policy": "block"
    },
    "completeness": {
     "checks": 6,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 6,
     "policy": "block"
    },
    "relevance": {
     "checks": 10,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 10,
     "policy": "warn"
    },
    "reliability": {
     "checks": 11,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 1,
     "policy": "block"
    },
    "timeliness": {
     "checks": 2,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 2,
     "policy": "warn"
    },
    "validity": {
     "checks": 6,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 6,
     "policy": "block"
    }
   },
   "flow": "A",
   "held_back_rows": 0,
   "logical_date": "2026-11-25",
   "nulls": {
    "category": 0,
    "date_of_birth": 0,
    "forename": 0,
    "nhs_number": 0,
    "postcode": 0,
    "referral_date": 0,
    "referral_id": 0,
    "risk_level": 0,
    "surname": 0
   },
   "quarantined": 0,
   "records_to_fix": 0,
   "rows": 2500
  }
 },
 "B": {
  "disclosure": {
   "fields": [
    "attendance_id",
    "nhs_number",
    "date_of_birth",
    "postcode",
    "arrived_at",
    "safeguarding_flag"
   ],
   "pseudonym_key_id": "mash-2026-04",
   "rows": 1135,
   "subjects": {
    "subjects": 1135,
    "subjects_sha256": "a4e16fa8944cf2ed6c451340229ce66e4d033eab2bb073ec042fdcfeabfc48eb"
   }
  },
  "files": [
   "mash-referrals_B_2026-11-25_part001of002.csv.pgp",
   "mash-referrals_B_2026-11-25_part002of002.csv.pgp"
  ],
  "manifest": {
   "destroy_by": "2032-11-25",
   "fields": [
    {
     "name": "attendance_id",
     "share": "keep"
    },
    {
     "name": "nhs_number",
     "share": "pseudonymise"
    },
    {
     "name": "date_of_birth",
     "share": "generalise",
     "to": "year"
    },
    {
     "name": "postcode",
     "share": "generalise",
     "to": "district"
    },
    {
     "name": "arrived_at",
     "share": "keep"
    },
    {
     "name": "safeguarding_flag",
     "share": "keep"
    }
   ],
   "file_rows": [
    1000,
    135
   ],
   "flow": "B",
   "formula_escape": true,
   "recipient": "rotherham-childrens-services",
   "rows": 1135,
   "sender": "rotherham-nhs-ft"
  },
  "plaintext_sha256": [
   "5eac785fd2a885acd1c365ae734ec945781ff071059e606ed53cd88cb187d7d5",
   "78fdbe72036913e668f23399f7ff0d718f5a436f6904d88e4e04d7be2a1b32ad"
  ],
  "privacy": {
   "basis": "consent",
   "excluded": {
    "opted_out": 40,
    "withdrawn": 25
   },
   "k": {
    "groups": 100,
    "k": 1,
    "min_k": 1,
    "on_failure": "warn",
    "passed": true,
    "quasi_identifiers": [
     "date_of_birth",
     "postcode"
    ],
    "rows": 1135
   },
   "pseudonym_key_id": "mash-2026-04",
   "rows_screened": 1200,
   "rows_sent": 1135
  },
  "quality": {
   "agreement": "mash-referrals",
   "blocked": [],
   "dimensions": {
    "accuracy": {
     "checks": 3,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 3,
     "policy": "block"
    },
    "completeness": {
     "checks": 6,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 6,
     "policy": "warn"
    },
    "relevance": {
     "checks": 8,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 8,
     "policy": "warn"
    },
    "reliability": {
     "checks": 1,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 1,
     "policy": "block"
    },
    "timeliness": {
     "checks": 2,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 2,
     "policy": "warn"
    },
    "validity": {
     "checks": 4,
     "failed": 0,
     "failing_rows": 0,
     "outcome": "pass",
     "passed": 4,
     "policy": "block"
    }
   },
   "flow": "B",
   "held_back_rows": 0,
   "logical_date": "2026-11-25",
   "nulls": {
    "arrived_at": 0,
    "attendance_id": 0,
    "date_of_birth": 0,
    "nhs_number": 0,
    "postcode": 0,
    "presenting_complaint": 0,
    "safeguarding_flag": 0
   },
   "quarantined": 0,
   "records_to_fix": 0,
   "rows": 1200
  }
 }
}
""")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _seed(world, url: str) -> None:
    day = LOGICAL_DATE
    source = synthetic.referrals(2_500, day, seed=14)
    synthetic.write_referrals_table(url, source)
    exports = world.root / "exports"
    attendances = synthetic.ed_attendances(1_200, day, seed=15)
    synthetic.write_ed_csv(exports, day, attendances)
    synthetic.write_consent_lists(exports, list(attendances["nhs_number"]), day, withdrawn=25, opted_out=40)


def _fingerprint(world, gpg_partner, flow_key: str, remote_dir: str) -> dict[str, object]:
    results = run_flow(world.run(flow_key), world.resolvers())
    assert results["status"] == "delivered"
    files = world.delivered(remote_dir)
    manifest_path = next((world.remote_root / remote_dir).glob("*.manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    ledger = world.settings.open_ledger()
    entries = {kind: [e.payload for e in ledger.entries(kind=kind, flow=flow_key)]
               for kind in ("quality", "privacy", "disclosure")}
    [quality], [privacy], [disclosure] = entries["quality"], entries["privacy"], entries["disclosure"]
    return {
        "files": [f.name for f in files],
        "plaintext_sha256": [_sha(gpg_partner.home.decrypt(f)) for f in files],
        "manifest": {key: manifest[key] for key in ("fields", "formula_escape", "rows", "flow", "sender",
                                                     "recipient")}
        | {"file_rows": [f["rows"] for f in manifest["files"]],
           "destroy_by": manifest["retention"]["destroy_by"]},
        # How many source batches there were is how it was read, not what was found.
        "quality": {key: value for key, value in quality.items() if key != "batches"},
        "privacy": privacy,
        "disclosure": {key: disclosure.get(key) for key in ("rows", "fields", "subjects", "pseudonym_key_id")},
    }


def test_a_seeded_nights_deliveries_and_records_are_what_they_were_before_the_rework(
        world, gpg_partner, pg_source):
    _seed(world, pg_source[0])
    world.secrets["mash_pseudonym_key"] = PSEUDONYM_KEY
    world.settings = world.settings.model_copy(update={"delivery_max_rows": 1_000})  # A goes as three files

    found = {"A": _fingerprint(world, gpg_partner, "mash-referrals.A", "inbound/mash"),
             "B": _fingerprint(world, gpg_partner, "mash-referrals.B", "inbound/ed-attendances")}

    if os.environ.get("PRINT_GOLDEN"):
        print("GOLDEN =", json.dumps(found, indent=1, sort_keys=True, default=str))
    assert len(found["A"]["files"]) == 3  # the seeded night really is split, held back and screened
    assert found["B"]["privacy"]["excluded"]
    assert json.loads(json.dumps(found, sort_keys=True, default=str)) == GOLDEN
