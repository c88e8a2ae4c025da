"""Licence detection: SPDX normalisation, LICENSE texts, model cards, precedence and policy."""

import os
import sys
import tracemalloc
from pathlib import Path

import pytest

from stoa.govern.licenses import (
    MAX_CARD_BYTES,
    MAX_LICENSE_BYTES,
    LicenseClaim,
    LicenseInfo,
    detect_license,
    license_decision,
    license_from_model_card,
    license_from_text,
    normalize_license,
)
from stoa.govern.scan import scan_paths
from stoa.govern.scan.policy import Policy, default_policy, load_policy
from tests.govern.scan.test_symlinks import hf_snapshot

# --- normalisation -------------------------------------------------------------------------

NORMALISED = [
    # SPDX ids in any case
    ("mit", "MIT"),
    ("MIT", "MIT"),
    ("apache-2.0", "Apache-2.0"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("cc-by-nc-4.0", "CC-BY-NC-4.0"),
    ("cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0"),
    ("cc0-1.0", "CC0-1.0"),
    ("unlicense", "Unlicense"),
    # deprecated SPDX ids: what SPDX defined them to mean
    ("gpl-3.0", "GPL-3.0-only"),
    ("GPL-3.0+", "GPL-3.0-or-later"),
    ("agpl-3.0", "AGPL-3.0-only"),
    ("lgpl-2.1", "LGPL-2.1-only"),
    # expressions
    ("MIT OR Apache-2.0", "MIT OR Apache-2.0"),
    ("mit or apache-2.0", "MIT OR Apache-2.0"),
    ("(mit OR apache-2.0) AND bsd-2-clause", "(MIT OR Apache-2.0) AND BSD-2-Clause"),
    ("gpl-2.0 WITH classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
    ("apache-2.0 and llama2", "Apache-2.0 AND LicenseRef-hf-llama2"),
    # common spellings
    ("Apache 2.0", "Apache-2.0"),
    ("Apache License 2.0", "Apache-2.0"),
    ("Apache License, Version 2.0", "Apache-2.0"),
    ("MIT License", "MIT"),
    ("MIT License OR Apache 2.0", "MIT OR Apache-2.0"),
    ("new BSD", "BSD-3-Clause"),
    ("GPLv3", "GPL-3.0-only"),
    ("CC BY-NC-SA 4.0", "CC-BY-NC-SA-4.0"),
    ("cc by 4.0", "CC-BY-4.0"),
    ("cc0", "CC0-1.0"),
    # Hub ids SPDX lacks
    ("llama2", "LicenseRef-hf-llama2"),
    ("llama3", "LicenseRef-hf-llama3"),
    ("Llama3.1", "LicenseRef-hf-llama3.1"),
    ("llama 3.1", "LicenseRef-hf-llama3.1"),
    ("llama3.2", "LicenseRef-hf-llama3.2"),
    ("llama3.3", "LicenseRef-hf-llama3.3"),
    ("llama4", "LicenseRef-hf-llama4"),
    ("gemma", "LicenseRef-hf-gemma"),
    ("openrail", "LicenseRef-hf-openrail"),
    ("openrail++", "LicenseRef-hf-openrail-plusplus"),
    ("creativeml-openrail-m", "LicenseRef-hf-creativeml-openrail-m"),
    ("bigscience-openrail-m", "LicenseRef-hf-bigscience-openrail-m"),
    ("bigscience-bloom-rail-1.0", "LicenseRef-hf-bigscience-bloom-rail-1.0"),
    ("bigcode-openrail-m", "LicenseRef-hf-bigcode-openrail-m"),
    ("deepfloyd-if-license", "LicenseRef-hf-deepfloyd-if-license"),
    ("apple-ascl", "LicenseRef-hf-apple-ascl"),
    ("lgpl-lr", "LicenseRef-hf-lgpl-lr"),
    ("bsd", "LicenseRef-hf-bsd"),
    ("BSD", "LicenseRef-hf-bsd"),
    ("cc", "LicenseRef-hf-cc"),
    # Hub families with one SPDX reading
    ("gpl", "GPL-1.0-or-later"),
    ("lgpl", "LGPL-2.0-or-later"),
    ("odbl", "ODbL-1.0"),
    ("odc-by", "ODC-By-1.0"),
    ("pddl", "PDDL-1.0"),
    ("c-uda", "C-UDA-1.0"),
    # an organisation's own ids pass through
    ("LicenseRef-Acme-Internal-1.0", "LicenseRef-Acme-Internal-1.0"),
    ("licenseref-acme", "LicenseRef-acme"),
    ("LicenseRef-hf-llama3.1", "LicenseRef-hf-llama3.1"),
    ("  mit  ", "MIT"),
]


@pytest.mark.parametrize(("text", "spdx"), NORMALISED)
def test_normalize_license(text, spdx):
    assert normalize_license(text) == spdx
    assert normalize_license(spdx) == spdx  # the output is its own normal form


@pytest.mark.parametrize(
    "text",
    ["", "unknown", "other", "Other", "none", "NOASSERTION", "proprietary", "mit or foo",
     "MIT/Apache-2.0", "mit AND", "(mit", "MIT WITH not-an-exception", "x" * 600],
)  # fmt: skip
def test_normalize_license_unrecognised(text):
    assert normalize_license(text) is None


# --- LICENSE texts -------------------------------------------------------------------------

MIT_TEXT = """MIT License

Copyright (c) 2024 Example Labs

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software.

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
"""
APACHE_TEXT = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""
BSD_CLAUSES = """Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.
"""
BSD3_CLAUSE = """
3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""
GPL3_TEXT = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>

  13. Use with the GNU Affero General Public License.

  Notwithstanding any other provision of this License, you have
permission to link or combine any covered work with a work licensed
under version 3 of the GNU Affero General Public License into a single
combined work.

library, you may consider it more useful to permit linking proprietary
applications with the library.  If this is what you want to do, use the GNU
Lesser General Public License instead of this License.
"""
LGPL21_TEXT = """                  GNU LESSER GENERAL PUBLIC LICENSE
                       Version 2.1, February 1999

[This is the first released version of the Lesser GPL.  It also counts
 as the successor of the GNU Library Public License, version 2, hence
 the version number 2.1.]

  3. You may opt to apply the terms of the ordinary GNU General Public
License instead of this License to a given copy of the Library.  To do
this, you must alter all the notices that refer to this License, so
that they refer to the ordinary GNU General Public License, version 2,
instead of to this License.
"""
LLAMA31_TEXT = """LLAMA 3.1 COMMUNITY LICENSE AGREEMENT
Llama 3.1 Version Release Date: July 23, 2024
\u201cAgreement\u201d means the terms and conditions for use, reproduction, distribution and
modification of the Llama Materials set forth herein.
"""
LLAMA32_TEXT = (
    "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, 2024\n"
)

TEXTS = [
    (MIT_TEXT, "MIT"),
    (APACHE_TEXT, "Apache-2.0"),
    (BSD_CLAUSES, "BSD-2-Clause"),
    (BSD_CLAUSES + BSD3_CLAUSE, "BSD-3-Clause"),
    ("Permission to use, copy, modify, and/or distribute this software for any\n"
     "purpose with or without fee is hereby granted, provided that the above\n"
     "copyright notice and this permission notice appear in all copies.", "ISC"),
    ("Mozilla Public License Version 2.0\n==================================\n\n"
     "1. Definitions\n", "MPL-2.0"),
    (GPL3_TEXT, "GPL-3.0-only"),
    ("                    GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991\n"
     "use the GNU Library General Public License instead of this License.", "GPL-2.0-only"),
    (LGPL21_TEXT, "LGPL-2.1-only"),
    ("                   GNU LESSER GENERAL PUBLIC LICENSE\n                       Version 3, "
     "29 June 2007\n  This version of the GNU Lesser General Public License incorporates\n"
     "the terms and conditions of version 3 of the GNU General Public\nLicense",
     "LGPL-3.0-only"),
    ("                    GNU AFFERO GENERAL PUBLIC LICENSE\n                       Version 3, "
     "19 November 2007\n  13. Remote Network Interaction; Use with the GNU General Public "
     "License.\n... version 3 of the GNU General Public License ...", "AGPL-3.0-only"),
    ("This is free and unencumbered software released into the public domain.\n\n"
     "Anyone is free to copy, modify, publish, use, compile, sell, or\ndistribute this "
     "software", "Unlicense"),
    ("Creative Commons Legal Code\n\nCC0 1.0 Universal\n\n    CREATIVE COMMONS CORPORATION IS "
     "NOT A LAW FIRM", "CC0-1.0"),
    ("Attribution 4.0 International\n\n=====\n\nCreative Commons Corporation (\"Creative "
     "Commons\") is not a law firm", "CC-BY-4.0"),
    ("Attribution-NonCommercial 4.0 International\n\n=====\n\nCreative Commons Corporation "
     "(\"Creative Commons\") is not a law firm", "CC-BY-NC-4.0"),
    ("Attribution-NonCommercial-ShareAlike 4.0 International\n\nCreative Commons Corporation",
     "CC-BY-NC-SA-4.0"),
    ("Attribution-NonCommercial-NoDerivatives 4.0 International\n\nCreative Commons "
     "Corporation", "CC-BY-NC-ND-4.0"),
    ("Attribution-ShareAlike 4.0 International\n\nCreative Commons Corporation",
     "CC-BY-SA-4.0"),
    ("Creative Commons Legal Code\n\nAttribution-NonCommercial-ShareAlike 3.0 Unported\n",
     "CC-BY-NC-SA-3.0"),
    ("LLAMA 2 COMMUNITY LICENSE AGREEMENT\nLlama 2 Version Release Date: July 18, 2023\n",
     "LicenseRef-hf-llama2"),
    ("META LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, "
     "2024\n", "LicenseRef-hf-llama3"),
    (LLAMA31_TEXT, "LicenseRef-hf-llama3.1"),
    (LLAMA32_TEXT, "LicenseRef-hf-llama3.2"),
    ("Gemma Terms of Use\n\nLast modified: February 21, 2024\n\nBy using, reproducing, "
     "modifying, distributing, performing or displaying any portion or element of Gemma",
     "LicenseRef-hf-gemma"),
    ("CreativeML Open RAIL-M\ndated August 22, 2022\n\nSection I: PRELIMINARY CONSIDERATIONS",
     "LicenseRef-hf-creativeml-openrail-m"),
    ("CreativeML Open RAIL++-M License\ndated July 26, 2023\n",
     "LicenseRef-hf-openrail-plusplus"),
    ("BigScience RAIL License v1.0\ndated May 19, 2022\n",
     "LicenseRef-hf-bigscience-bloom-rail-1.0"),
    ("BigCode Open RAIL-M v1 License Agreement\n", "LicenseRef-hf-bigcode-openrail-m"),
    ("DEEPFLOYD IF LICENSE AGREEMENT\nThis License Agreement (as may be amended",
     "LicenseRef-hf-deepfloyd-if-license"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "spdx"), TEXTS)
def test_license_from_text(text, spdx):
    assert license_from_text(text) == spdx


def test_license_text_wrapping_and_markup_do_not_matter():
    rewrapped = " ".join(MIT_TEXT.split()).replace(". ", ".\r\n> ")
    assert license_from_text(f"# The **MIT** License\n\n{rewrapped}") == "MIT"


def test_license_file_with_several_texts_yields_all():
    assert license_from_text(APACHE_TEXT + "\n\n" + MIT_TEXT) == "Apache-2.0 AND MIT"


@pytest.mark.parametrize(
    "text",
    ["", "Copyright 2024 Acme Corp. All rights reserved.", "\x00\x01\xff" * 100,
     # the MIT grant without the notice condition is not the MIT licence
     "Permission is hereby granted, free of charge, to any person obtaining a copy"],
)  # fmt: skip
def test_license_from_text_unrecognised(text):
    assert license_from_text(text) is None


def test_license_text_is_only_read_to_the_limit():
    assert license_from_text(" " * MAX_LICENSE_BYTES + MIT_TEXT) is None


# --- model cards ---------------------------------------------------------------------------


def card(front_matter: str, body: str = "# A model\n") -> str:
    return f"---\n{front_matter}\n---\n{body}"


def test_model_card_license():
    claim = license_from_model_card(card("language: en\nlicense: cc-by-nc-4.0\ntags: [x]"))
    assert claim == LicenseClaim("model card front-matter", "cc-by-nc-4.0", "CC-BY-NC-4.0")


def test_model_card_license_list_means_all_apply():
    claim = license_from_model_card(card("license:\n- llama3.2\n- mit"))
    assert claim == LicenseClaim(
        "model card front-matter", "llama3.2, mit", "LicenseRef-hf-llama3.2 AND MIT"
    )


def test_model_card_other_with_a_known_name():
    claim = license_from_model_card(card("license: other\nlicense_name: llama3"))
    assert claim is not None
    assert (claim.raw, claim.spdx) == ("other: llama3", "LicenseRef-hf-llama3")


def test_model_card_other_with_a_custom_name_gets_its_own_ref():
    claim = license_from_model_card(
        card("license: other\nlicense_name: Qwen Research\nlicense_link: https://x.test/LICENSE")
    )
    assert claim is not None
    assert claim.raw == "other: Qwen Research <https://x.test/LICENSE>"
    assert claim.spdx == "LicenseRef-hf-other-qwen-research"


def test_model_card_unrecognised_license_is_kept_raw():
    claim = license_from_model_card(card("license: acme-eula"))
    assert claim == LicenseClaim("model card front-matter", "acme-eula", None)
    mixed = license_from_model_card(card("license: [mit, acme-eula]"))
    assert mixed is not None and mixed.spdx is None


def test_model_card_bom_and_crlf():
    text = "\ufeff---\r\nlicense: apache-2.0\r\n---\r\n# Model\r\n"
    claim = license_from_model_card(text)
    assert claim is not None and claim.spdx == "Apache-2.0"


@pytest.mark.parametrize(
    "text",
    [
        "# No front-matter\nlicense: mit\n",
        "---\nlicense: mit\n",  # never closed
        card("license: [mit"),  # malformed YAML
        card("license: mit\n  bad: indent: here"),
        card("- license\n- mit"),  # not a mapping
        card("license: unknown"),
        card("license: other"),  # other without a name says nothing
        card("license: 42"),
        card("license: " + "[" * 5000 + "]" * 5000),  # nesting deep enough to recurse
        card("tags: [x]"),
        "",
    ],
)
def test_model_card_says_nothing(text):
    assert license_from_model_card(text) is None


# --- detection: precedence, conflicts, hostile folders -------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_declared_wins_and_a_disagreeing_card_is_a_conflict(tmp_path):
    write(tmp_path / "README.md", card("license: cc-by-nc-4.0"))
    info = detect_license(tmp_path, declared="mit", hints=[])
    assert info == LicenseInfo(
        spdx="MIT",
        source="declared",
        raw="mit",
        conflicts=[LicenseClaim("README.md front-matter", "cc-by-nc-4.0", "CC-BY-NC-4.0")],
    )


def test_card_beats_license_file_and_agreeing_sources_are_no_conflict(tmp_path):
    write(tmp_path / "README.md", card("license: apache-2.0"))
    write(tmp_path / "LICENSE", APACHE_TEXT)
    info = detect_license(tmp_path, declared=None, hints=[("Apache 2.0", "safetensors metadata")])
    assert info == LicenseInfo("Apache-2.0", "README.md front-matter", "apache-2.0", [])


def test_license_file_beats_metadata(tmp_path):
    write(tmp_path / "License.TXT", LLAMA31_TEXT)
    info = detect_license(tmp_path, declared=None, hints=[("apache-2.0", "safetensors metadata")])
    assert (info.spdx, info.source, info.raw) == ("LicenseRef-hf-llama3.1", "License.TXT", None)
    assert info.conflicts == [LicenseClaim("safetensors metadata", "apache-2.0", "Apache-2.0")]


def test_a_source_naming_part_of_the_chosen_expression_agrees(tmp_path):
    write(tmp_path / "README.md", card("license: [llama3.2, mit]"))
    write(tmp_path / "LICENSE", LLAMA32_TEXT)
    info = detect_license(tmp_path, declared=None, hints=[])
    assert info.spdx == "LicenseRef-hf-llama3.2 AND MIT"
    assert info.conflicts == []


def test_a_card_without_a_licence_defers_to_the_license_file(tmp_path):
    write(tmp_path / "README.md", card("license: other"))
    write(tmp_path / "COPYING", MIT_TEXT)
    assert detect_license(tmp_path, declared=None, hints=[]).spdx == "MIT"


def test_an_unrecognised_declaration_is_not_overruled(tmp_path):
    info = detect_license(tmp_path, declared="Proprietary", hints=[("mit", "GGUF general.license")])
    assert (info.spdx, info.source, info.raw) == (None, "declared", "Proprietary")
    assert info.conflicts == [LicenseClaim("GGUF general.license", "mit", "MIT")]


def test_conflicting_license_files_are_all_reported(tmp_path):
    write(tmp_path / "LICENSE", MIT_TEXT)
    write(tmp_path / "LICENSE.md", "Attribution-NonCommercial 4.0 International\nCreative Commons")
    info = detect_license(tmp_path, declared=None, hints=[])
    assert (info.spdx, info.source) == ("MIT", "LICENSE")
    assert info.conflicts == [LicenseClaim("LICENSE.md", None, "CC-BY-NC-4.0")]


def test_a_single_file_uses_only_declared_and_hints(tmp_path):
    write(tmp_path / "README.md", card("license: cc-by-nc-4.0"))
    write(tmp_path / "LICENSE", MIT_TEXT)
    model = write(tmp_path / "model.gguf", "not really gguf")
    info = detect_license(model, declared=None, hints=[("llama3", "GGUF general.license")])
    assert info == LicenseInfo("LicenseRef-hf-llama3", "GGUF general.license", "llama3", [])


def test_metadata_holding_a_whole_licence_text(tmp_path):
    info = detect_license(tmp_path / "m.safetensors", hints=[(MIT_TEXT, "safetensors metadata")])
    assert (info.spdx, info.source) == ("MIT", "safetensors metadata")
    assert info.raw is not None and info.raw.startswith("MIT License Copyright (c) 2024")
    assert len(info.raw) == 200


def test_no_source_says_anything(tmp_path):
    write(tmp_path / "README.md", "# A model without front-matter\n")
    write(tmp_path / "LICENSE", "   \n")
    info = detect_license(tmp_path, declared="", hints=[("unknown", "safetensors metadata")])
    assert info == LicenseInfo(None, "none", None, [])


def test_nested_files_are_not_searched(tmp_path):
    write(tmp_path / "sub" / "LICENSE", MIT_TEXT)
    assert detect_license(tmp_path, declared=None, hints=[]).source == "none"


def test_a_huge_readme_is_read_only_to_the_limit(tmp_path):
    readme = tmp_path / "README.md"
    with readme.open("w") as out:
        out.write(card("license: mit"))
        out.write("x" * (10 * 1024 * 1024))
    normalize_license("mit")  # build the licence tables before measuring
    tracemalloc.start()
    try:
        info = detect_license(tmp_path, declared=None, hints=[])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.spdx == "MIT"
    assert peak < 4 * MAX_CARD_BYTES  # bytes: the head of the file, never all 10 MiB


def test_front_matter_closing_past_the_limit_is_ignored(tmp_path):
    with (tmp_path / "README.md").open("w") as out:
        out.write("---\nlicense: mit\ndescription: |\n")
        out.write(("  " + "y" * 98 + "\n") * (MAX_CARD_BYTES // 100 + 1))
        out.write("---\n")
    assert detect_license(tmp_path, declared=None, hints=[]).source == "none"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
@pytest.mark.parametrize(
    ("files", "spdx", "source"),
    [
        ({"LICENSE": MIT_TEXT}, "MIT", "LICENSE"),
        ({"LICENSE": APACHE_TEXT}, "Apache-2.0", "LICENSE"),
        ({"README.md": card("license: apache-2.0"), "LICENSE": APACHE_TEXT},
         "Apache-2.0", "README.md front-matter"),
    ],
)  # fmt: skip
def test_a_hugging_face_snapshot_licence_is_read_through_its_symlinks(
    tmp_path, files, spdx, source
):
    """The Hub cache links every snapshot file to ``../../blobs/<sha256>``."""
    files = {**files, "config.json": '{"model_type": "bert"}'}
    snapshot = hf_snapshot(tmp_path, {name: text.encode() for name, text in files.items()})
    assert all((snapshot / name).is_symlink() for name in files)
    info = detect_license(snapshot, declared=None, hints=[])
    assert (info.spdx, info.source, info.conflicts) == (spdx, source, [])
    # The scan a pull runs (licence required) decides on it instead of sending it to review.
    [file] = scan_paths([snapshot], require_license=True).files
    assert (file.license, file.license_source) == (spdx, source)
    assert not [f for f in file.findings if f.rule.startswith("license")]


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlinks_out_of_the_folder_follow_the_scanners_rule(tmp_path):
    outside = tmp_path / "outside"
    write(outside / "LICENSE", MIT_TEXT)
    write(outside / "README.md", card("license: apache-2.0"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "LICENSE").symlink_to(outside / "LICENSE")
    (model / "README.md").symlink_to("../outside/README.md")
    assert detect_license(model).spdx == "Apache-2.0"
    # symlinks.allow_outside_root: false refuses them here as it does for weights.
    refused = detect_license(model, allow_outside_root=False)
    assert refused == LicenseInfo(None, "none", None, [])
    # Links to a folder or to nothing are never read.
    for name in ("LICENSE", "README.md"):
        (model / name).unlink()
    (model / "LICENSE").symlink_to(outside, target_is_directory=True)
    (model / "README.md").symlink_to(outside / "gone.md")
    assert detect_license(model) == LicenseInfo(None, "none", None, [])


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlinks_inside_the_folder_are_followed(tmp_path):
    write(tmp_path / "licenses" / "mit.txt", MIT_TEXT)
    (tmp_path / "LICENSE").symlink_to("licenses/mit.txt")
    assert detect_license(tmp_path, declared=None, hints=[]).spdx == "MIT"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_license_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "LICENSE")
    os.mkdir(tmp_path / "README.md")
    assert detect_license(tmp_path, declared=None, hints=[]).source == "none"


# --- decisions -----------------------------------------------------------------------------

DEFAULT_DECISIONS = [
    ("MIT", "allow"),
    ("Apache-2.0", "allow"),
    ("BSD-3-Clause", "allow"),
    ("CC-BY-4.0", "allow"),
    ("CC0-1.0", "allow"),
    ("CC-BY-NC-4.0", "review"),
    ("CC-BY-NC-SA-4.0", "review"),
    ("GPL-3.0-only", "review"),
    ("AGPL-3.0-only", "review"),
    ("MPL-2.0", "review"),
    ("LicenseRef-hf-llama3.1", "review"),
    ("LicenseRef-hf-gemma", "review"),
    ("LicenseRef-hf-openrail-plusplus", "review"),
    ("LicenseRef-hf-creativeml-openrail-m", "review"),
    ("LicenseRef-hf-other-qwen-research", "review"),  # not listed: the default
    (None, "review"),  # unknown: the default
    ("MIT OR GPL-3.0-only", "allow"),
    ("MIT AND CC-BY-NC-4.0", "review"),
    ("(MIT OR LicenseRef-hf-llama3) AND Apache-2.0", "allow"),
    ("Apache-2.0 WITH LLVM-exception", "allow"),
    ("GPL-2.0-only WITH Classpath-exception-2.0", "review"),
]


@pytest.mark.parametrize(("spdx", "decision"), DEFAULT_DECISIONS)
def test_default_policy_decisions(spdx, decision):
    assert license_decision(spdx, default_policy()) == decision


def test_default_policy_ids_are_canonical():
    """A typo in the shipped policy would silently send a licence to the default."""
    for spdx in default_policy().licenses:
        assert normalize_license(spdx) == spdx


STRICT = Policy(
    version="test",
    licenses={"MIT": "allow", "AGPL-3.0-only": "block", "gpl-3.0": "allow"},
    license_default="review",
)


@pytest.mark.parametrize(
    ("spdx", "decision"),
    [
        ("MIT AND AGPL-3.0-only", "block"),
        ("MIT OR AGPL-3.0-only", "allow"),
        ("AGPL-3.0-only OR CC-BY-NC-4.0", "review"),
        ("(MIT OR AGPL-3.0-only) AND CC-BY-NC-4.0", "review"),
        ("AGPL-3.0-only WITH Classpath-exception-2.0", "block"),
        ("GPL-3.0-only", "allow"),  # the policy's deprecated spelling still applies
        ("not an expression (", "review"),
    ],
)
def test_expression_decisions(spdx, decision):
    assert license_decision(spdx, STRICT) == decision


def test_unknown_licence_gets_the_policy_default():
    blocking = Policy(version="test", license_default="block")
    assert license_decision(None, blocking) == "block"
    assert license_decision("MIT", blocking) == "block"


def test_two_spellings_in_one_policy_file_the_stricter_wins(tmp_path):
    path = write(
        tmp_path / "policy.yaml",
        "version: t\nextends: none\nlicenses:\n  block: [GPL-3.0]\n  allow: [gpl-3.0-only]\n",
    )
    assert license_decision("GPL-3.0-only", load_policy(path)) == "block"


def test_a_user_policy_can_use_hub_ids(tmp_path):
    path = write(
        tmp_path / "policy.yaml",
        "version: acme/1\nlicenses:\n  allow: [llama3.1]\n  block: [cc-by-nc-4.0]\n",
    )
    policy = load_policy(path)
    assert license_decision("LicenseRef-hf-llama3.1", policy) == "allow"
    assert license_decision("CC-BY-NC-4.0", policy) == "block"
    assert license_decision("LicenseRef-hf-llama3.2", policy) == "review"
