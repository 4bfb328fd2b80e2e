"""The results table's rows for the scale and memory benchmarks (data scale, shards, ImageNet-size
rounds, the embedding store, the selectors' memory); ``benchmarks/table.py`` dispatches to them."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.table_format import _memory, _s


def data_scale_rows(r: dict[str, Any], where: str) -> list[str]:
    """One row per pool: streamed, in-memory and plain torchvision scoring side by side."""
    out = []
    pools = list(dict.fromkeys(x["pool"] for x in r["results"]))
    for pool in pools:
        arms = {x["arm"]: x for x in r["results"] if x["pool"] == pool}
        s, p = arms["svpkit stream"], arms["plain"]
        what = f"scoring {pool} images at {s['size']} px once, {s['workers']} loader workers"
        labels = (("stream", "svpkit stream"), ("in memory", "svpkit memory"), ("plain ImageFolder", "plain"))
        txt = "; ".join(
            f"{label} {x['images_per_second']:,.0f} img/s, load {_s(x['load_seconds'])} s, {_memory(x)}"
            for label, x in ((label, arms[arm]) for label, arm in labels if arm in arms)
        )
        ratio = f"**{s['images_per_second'] / p['images_per_second']:.2f}×** plain's img/s"
        out.append(f"| {what} | {txt} | {ratio} | {where} |")
    return out


def k_center_scale_rows(r: dict[str, Any], where: str) -> list[str]:
    """One row: each arm's round and seconds per 1,000 picks, the fraction of the measured bandwidth."""
    arms, base = r["arms"], r["arms"]["fp32"]
    what = (
        f"greedy k-center {r['n']:,} × {r['dim']}, {r['labeled']:,} labeled, {r['picks']:,} picks per round, "
        f"{r['threads']} thread; load average {r['load_average_before'][0]:.1f} → {r['load_average_after'][0]:.1f}"
    )
    labels = {"fp32": "fp32 (before)", "subpool": "subpool=100000", "bf16": "storage=bf16", "fp16": "storage=fp16"}
    txt = "; ".join(
        f"{labels[name]}: round {_s(a['round_seconds'])} s (initial distances {_s(a['initial_seconds'])} s), "
        f"{_s(a['seconds_per_1000_picks'])} s / 1,000 picks = {a['fraction_of_bandwidth']:.0%} of {r['bandwidth_gb_s']:.1f} GB/s"
        for name, a in arms.items()
    )
    ratio = ", ".join(
        f"{labels[name]} **{base['seconds_per_1000_picks'] / a['seconds_per_1000_picks']:.2f}×**"
        for name, a in arms.items()
        if name != "fp32"
    )
    return [f"| {what} | {txt} | {ratio} per 1,000 picks | {where} |"]


def shards_rows(r: dict[str, Any], where: str) -> list[str]:
    """One row: each shard engine's scoring pass (and random-order reads) side by side."""
    res = {x["arm"]: x for x in r["results"]}
    files = res["files"]
    first = r["results"][0]
    what = f"sharded pool: {first['pool']:,} synthetic JPEGs at {first['size']} px scored once, {first['workers']} loader workers"
    parts = []
    for x in r["results"]:
        random = f", random order {x['random_images_per_second']:,.0f} img/s" if "random_images_per_second" in x else ""
        parts.append(f"{x['arm']} {x['images_per_second']:,.0f} img/s{random}, peak USS {x['peak_rss_mib']:,.0f} MiB")
    lit = res["litdata"]
    ratio = f"litdata (chosen) **{lit['images_per_second'] / files['images_per_second']:.2f}×** one file per image"
    return [f"| {what} | {'; '.join(parts)} | {ratio} | {where} |"]


def imagenet_round_rows(r: dict[str, Any], where: str) -> list[str]:
    """One row per pool: the least-confidence round's phases (cold and/or cached statistics) and the
    plain loop's scoring; then the other selectors' peaks and the pool-size-dependent memory."""
    out = []
    summary = r["summary"]
    for pool in list(dict.fromkeys(x["pool_images"] for x in r["results"])):
        here = [x for x in r["results"] if x["pool_images"] == pool]
        arms = {x["arm"]: x for x in here if x.get("selector", "least_confidence") == "least_confidence"}
        if any(a.startswith("svpkit") for a in arms):
            out.append(_imagenet_lc_row(r, pool, arms, summary, where))
        others = [x for x in here if x.get("selector", "least_confidence") != "least_confidence"]
        if others:
            lc = arms.get("svpkit cold") or arms.get("svpkit cached")
            what = f"the same round with other selectors, {pool:,} images"
            txt = "; ".join(_other_selector(x, lc) for x in others)
            out.append(f"| {what} | {txt} | - | {where} |")
    per_image = summary.get("bytes_per_pool_image") or {}
    if per_image:
        pools = len({x["pool_images"] for x in r["results"]})
        what = f"pool-size-dependent memory of that round, slope of the peak between {pools} pools"
        txt = "; ".join(f"{k} {v:,.0f} B per pool image" for k, v in per_image.items())
        out.append(f"| {what} | {txt} | - | {where} |")
    return out


def _other_selector(x: dict[str, Any], lc: dict[str, Any] | None) -> str:
    text = f"{x['selector']}: peak PSS {x['peak_pss_mib']:,.0f} MiB"
    if lc:
        text += f" ({x['peak_pss_mib'] / lc['peak_pss_mib']:.2f}× least confidence's)"
    ph = x["phases_seconds"]
    if "scored_before_cut" in x:
        return (
            text + f", scoring {x['scoring_images_per_second']:,.0f} img/s, cut after {x['scored_before_cut']:,} scored"
        )
    scored = (
        f" ({x['pool']:,} candidates of {x['pool_size']:,} scored)"
        if x.get("pool_size", x["pool"]) != x["pool"]
        else ""
    )
    return text + f", score {_s(ph['score'])} s{scored}, select {_s(ph['select'])} s"


def _imagenet_lc_row(r: dict[str, Any], pool: int, arms: dict[str, Any], summary: dict[str, Any], where: str) -> str:
    what = (
        f"one least-confidence round, {pool:,} generated JPEGs in {r['classes']:,} classes at {r['size']} px, "
        "preact_resnet20, 1 proxy epoch, stream=on"
    )
    parts = []
    for arm in (a for a in arms if a.startswith("svpkit")):
        x, ph = arms[arm], arms[arm]["phases_seconds"]
        phases = ", ".join(f"{k} {_s(v)} s" for k, v in ph.items())
        rate = x["scoring_images_per_second"]
        scoring = f"scoring {rate:,.0f} img/s, " if rate == rate else ""
        if "scored_before_cut" in x:
            scoring += f"cut after {x['scored_before_cut']:,} of {x['pool']:,} pool images scored, "
        parts.append(
            f"{arm}: {phases}, {scoring}scoring starts after "
            f"{_s(x['scoring_starts_after_seconds'])} s, peak PSS {x['peak_pss_mib']:,.0f} MiB"
        )
    if "plain" not in arms:  # a run of selectors only
        return f"| {what} | {'; '.join(parts)} | - | {where} |"
    plain = arms["plain"]
    prefix = f" (first {plain['pool']:,} images)" if plain.get("folder_images", plain["pool"]) != plain["pool"] else ""
    parts.append(
        f"plain ImageFolder loop{prefix}: scoring {plain['scoring_images_per_second']:,.0f} img/s, "
        f"peak PSS {plain['peak_pss_mib']:,.0f} MiB"
    )
    ratios = summary["scoring_ratio_vs_plain"][str(pool)]
    if "svpkit cached" in ratios:  # results written before the selector was part of an arm's name
        ratio = f"scoring **{ratios['svpkit cached']:.2f}×** plain's img/s (cold run {ratios['svpkit cold']:.2f}×)"
    elif "svpkit cold least_confidence" in ratios:
        cached = ratios.get("svpkit cached least_confidence")
        ratio = f"scoring **{ratios['svpkit cold least_confidence']:.2f}×** plain's img/s"
        ratio += f" (second run {cached:.2f}×)" if cached else ""
    else:
        ratio = f"scoring **{ratios['svpkit cached least_confidence']:.2f}×** plain's img/s (cached statistics)"
    second = (summary.get("second_run") or {}).get(str(pool))
    if second:
        ok = "within" if second["within_60_s"] else "**not** within"
        ratio += f"; the second run scores {_s(second['to_scoring_minus_first_listing_s'])} s after the first's listing ({ok} 60 s)"
    return f"| {what} | {'; '.join(parts)} | {ratio} | {where} |"


def _held(arm: dict[str, Any]) -> str:
    """`` (data held N MiB)``: the arm's anonymous pages and workers' private writes, without the
    store's mapped file pages that its PSS counts (:class:`benchmarks.bench_data_scale.PeakRss`)."""
    return f" (data held {arm['peak_data_mib']:,.0f} MiB)" if "peak_data_mib" in arm else ""


def embedding_store_rows(r: dict[str, Any], where: str) -> list[str]:
    """The store pass against the plain loop, and the round from the store."""
    by = {x["arm"]: x for x in r["results"]}
    out = []
    if "store" in by:
        st = by["store"]
        what = (
            f"embedding store pass, {r['backbone']} at {r['size']} px, {st['train_images']:,} streamed training JPEGs"
        )
        txt = (
            f"store: {st['images_per_second']:,.0f} img/s ({_s(st['pass_seconds']['train'])} s for the training images), "
            f"load {_s(st['load_seconds'])} s, peak PSS {st['peak_pss_mib']:,.0f} MiB{_held(st)}"
        )
        ratio = "-"
        if "plain" in by:
            pl = by["plain"]
            txt += (
                f"; plain ImageFolder + DataLoader + no_grad loop (first {pl['images']:,} images): "
                f"{pl['images_per_second']:,.0f} img/s, peak PSS {pl['peak_pss_mib']:,.0f} MiB{_held(pl)}"
            )
            ratio = f"store pass **{r['summary']['store_vs_plain_images_per_second']:.2f}×** plain's img/s"
        out.append(f"| {what} | {txt} | {ratio} | {where} |")
    if "round" in by:
        rd, ph = by["round"], by["round"]["phases_seconds"]
        what = f"one least-confidence round from the store (linear_head, {rd['picked']:,} picks)"
        txt = (
            f"train {_s(ph['train'])} s, score {_s(ph['score'])} s, select {_s(ph['select'])} s; the whole call "
            f"(load, read and standardise the stored vectors, round, eval) {_s(rd['total_seconds'])} s, "
            f"peak PSS {rd['peak_pss_mib']:,.0f} MiB"
        )
        out.append(f"| {what} | {txt} | round **{_s(rd['round_seconds'])} s** | {where} |")
    return out


def pool_bytes_rows(r: dict[str, Any], where: str) -> list[str]:
    """Bytes held per pool image at two folder sizes, and the slope between them."""
    parts = "; ".join(
        f"{x['folder']} ({x['pool_images']:,} pool images): {x['held_per_pool_image']:.1f} B per pool image held "
        f"(file list {x['parts_per_pool_image']['train file list blob'] + x['parts_per_pool_image']['train file list offsets']:.1f}, "
        f"labels {x['parts_per_pool_image']['train labels']:.1f}, pool index {x['parts_per_pool_image']['pool index']:.1f}, "
        f"reduction {x['parts_per_pool_image']['reduction (float32)']:.1f}), listing peak {x['listing_peak_per_file']:.1f} B per file"
        for x in r["results"]
    )
    slope = r["summary"].get("bytes_per_pool_image_slope")
    ratio = f"**{slope:.1f} B** per pool image (goal ≤ {r['summary']['goal_bytes_per_pool_image']})" if slope else "-"
    what = "what a streamed round holds per pool image (tracemalloc: load, pool index, least confidence's reduction)"
    return [f"| {what} | {parts} | {ratio} | {where} |"]


def shard_memory_rows(r: dict[str, Any], where: str) -> list[str]:
    """A rank's memory under torchrun against one process's: peaks (whole, load), pool-dependent bytes."""
    res = r["results"]
    what = f"a round's memory per process, {res[0]['train_images']:,}-image folder, torchrun 2 ranks vs one process"
    parts = []
    for x in res:
        names = {"one": "one process", "ranks": "2 ranks", "ranks before": "2 ranks as before"}
        label = names.get(x["arm"], x["arm"]) + (f", rank {x['rank']}" if x["arm"] != "one" else "")
        txt = (
            f"{label}: peak PSS {x['peak_pss_mib']:,.0f} MiB (+{x['peak_pss_mib'] - x['start_pss_mib']:.1f} over start"
        )
        if "peak_load_pss_mib" in x:
            txt += f"; load +{x['peak_load_pss_mib'] - x['start_pss_mib']:.1f}, {x['listing_phase'].replace('_', ' ')}"
        held = r["summary"].get("pool_dependent_bytes", {}).get(f"{x['arm']} rank {x['rank']}")
        txt += f"; {held / 1e6:.1f} MB that grow with the pool" if held is not None else ""
        parts.append(txt + ")")
    one = next((x for x in res if x["arm"] == "one"), None)
    ranks = [x for x in res if x["arm"] == "ranks"]
    ratio = "-"
    if one and ranks:
        grown = [(x["peak_pss_mib"] - x["start_pss_mib"]) / (one["peak_pss_mib"] - one["start_pss_mib"]) for x in ranks]
        ratio = "rank peak − start **" + ", ".join(f"{g:.2f}×" for g in grown) + "** one process's"
    return [f"| {what} | {'; '.join(parts)} | {ratio} | {where} |"]


def vector_round_rows(r: dict[str, Any], where: str) -> list[str]:
    """One round on a store-sized array of vectors: read + standardise, then train, score, select."""
    x, ph = r["result"], r["result"]["phases_seconds"]
    what = (
        f"one least-confidence round on {r['train']:,} × {r['dim']} stored float16 vectors ({r['classes']:,} classes, "
        f"generated), linear_head, {r['initial']:,} labeled, {x['picked']:,} picks"
    )
    txt = (
        f"read + standardise {_s(x['read_and_standardise_seconds'])} s; train {_s(ph['train'])} s, "
        f"score {_s(ph['score'])} s, select {_s(ph['select'])} s, eval {_s(ph['eval'])} s; "
        f"the API call {_s(x['api_call_seconds'])} s; peak PSS {x['peak_pss_mib']:,.0f} MiB"
    )
    return [f"| {what} | {txt} | round **{_s(x['round_seconds'])} s** (goal < 60) | {where} |"]


def selector_memory_rows(r: dict[str, Any], where: str) -> list[str]:
    """One row: each selector's round over the whole pool (stand-in model), its peak against least confidence's."""
    x0, s = r["results"][0], r["summary"]
    what = (
        f"one round's memory per selector over the whole pool, {x0['train_images']:,}-image folder ({x0['pool']:,} pool "
        f"images), stand-in selector model ({r['classes']:,} classes, {r['stand_in_dim']}-d features), k = {r['k']:,}, "
        f"median of {max(x.get('repeat', 0) for x in r['results']) + 1} runs"
    )
    med, vs, parts = s["median_mib"], s["vs_least_confidence"], []
    for name in med["peak"]:
        x = next(x for x in r["results"] if x["selector"] == name)
        score = statistics.median(y["score_seconds"] for y in r["results"] if y["selector"] == name)
        held = (x["bytes"]["reductions held"] + x["bytes"]["embeddings held"]) / 1e6
        scored = f" ({x['scored']:,} candidates scored)" if x["scored"] != x["pool"] else ""
        parts.append(
            f"{name}: peak PSS {med['peak'][name]:,.0f} MiB ({vs['peak'][name]:.2f}×), peak − start "
            f"{med['peak_minus_start'][name]:,.0f} MiB ({vs['peak_minus_start'][name]:.2f}×), peak anonymous "
            f"{med['peak_data'][name]:,.0f} MiB ({vs['peak_data'][name]:.2f}×), score {_s(score)} s"
            f"{scored}, held {held:,.1f} MB"
        )
    ratio = f"peaks **{min(vs['peak'].values()):.2f}–{max(vs['peak'].values()):.2f}×** least confidence's (goal within 10 %)"
    before = r.get("before")
    old = (before or {}).get("summary", {}).get("peak_vs_least_confidence", {})
    if any(abs(v - 1) > 0.1 for v in old.values()):  # the run before a fix, kept beside
        ratio += "; the earlier run kept beside (`--before`): " + ", ".join(
            f"{k} {v:.2f}×" for k, v in old.items() if abs(v - 1) > 0.1
        )
    return [f"| {what} | {'; '.join(parts)} | {ratio} | {where} |"]
