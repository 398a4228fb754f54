"""Measuring candidates: accuracy on the runner (runs may overlap), timing here, serially, in rounds.

Each candidate's timing process lives for its batch (the model loaded once). A round times the
baseline and every candidate of the batch in a shuffled order, one window each, never two at once;
a candidate's speedup is then the median of its in-round ratios to the baseline, so a machine that
slows down or speeds up during the build moves both sides of each ratio. A window during which other
processes kept the CPU busy is timed again (bounded); candidates whose speedup verdict is still
inconclusive get extra rounds, up to `measure.max_rounds`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.keys import CacheKeys
from edgeopt.builder.requests import Requests
from edgeopt.cache import BuildCache
from edgeopt.manifest import Manifest
from edgeopt.measure.rounds import WindowPlan, interference
from edgeopt.measurements import Discard
from edgeopt.progress import BuildProgress
from edgeopt.protocol import SessionInfo, WindowResult
from edgeopt.runners import Outcome, Runner, Timer, TimingFailed

MAX_WINDOW_RETRIES = 2
PERSISTENT_LOAD_SHARE = 0.5  # past this share of interfered windows, the load is the machine's normal state


@dataclass(frozen=True)
class Item:
    id: str
    artifact: ModelArtifact
    baseline: bool = False


@dataclass
class Timed:
    """One model's timing in a build: its windows by round, and the baseline's window of each round."""

    info: SessionInfo | None = None
    windows: dict[str, WindowResult] = field(default_factory=dict)
    baseline_windows: dict[str, WindowResult] = field(default_factory=dict)
    discarded: list[Discard] = field(default_factory=list)
    interference_kept: int = 0
    error: str | None = None
    cached: bool = False

    def to_json(self) -> dict:
        return {"info": self.info.model_dump(mode="json") if self.info else None,
                "windows": {k: w.model_dump(mode="json") for k, w in self.windows.items()},
                "baseline_windows": {k: w.model_dump(mode="json") for k, w in self.baseline_windows.items()},
                "discarded": [d.model_dump(mode="json") for d in self.discarded],
                "interference_kept": self.interference_kept}

    @classmethod
    def from_json(cls, data: dict, cached: bool = True) -> Timed:
        return cls(info=SessionInfo.model_validate(data["info"]) if data.get("info") else None,
                   windows={k: WindowResult.model_validate(w) for k, w in data["windows"].items()},
                   baseline_windows={k: WindowResult.model_validate(w) for k, w in data["baseline_windows"].items()},
                   discarded=[Discard.model_validate(d) for d in data["discarded"]],
                   interference_kept=data["interference_kept"], cached=cached)


@dataclass
class _Member:
    item: Item
    timer: Timer | None  # None: the session did not open (timed.error says why)
    timed: Timed
    windows_done: int = 0


class Measurer:
    def __init__(self, manifest: Manifest, requests: Requests, keys: CacheKeys, cache: BuildCache, runner: Runner,
                 timing_runner: Runner, progress: BuildProgress, seed: int = 0):
        self.manifest, self.requests, self.keys, self.cache = manifest, requests, keys, cache
        self.runner, self.timing_runner, self.progress = runner, timing_runner, progress
        spec = manifest.measure
        self.rounds, self.max_rounds = spec.rounds, max(spec.rounds, spec.max_rounds)
        self.windows = WindowPlan.from_measure(spec, self.rounds)
        self._shuffle = random.Random(seed)
        self._baseline: _Member | None = None
        self._baseline_item: Item | None = None
        self.baseline = Timed()  # the baseline's own windows and every window it was timed in beside others
        self.fresh_windows = 0
        self.interfered_windows = 0
        self.log: list[dict] = []  # every window timed in this build: who, when (never two at once)

    # -- accuracy ---------------------------------------------------------------------------------------
    def accuracy(self, items: list[Item]) -> dict[str, Outcome]:
        """The baseline's first (it writes the reference outputs others compare with), then the rest."""
        results: dict[str, Outcome] = {}
        for group in ([i for i in items if i.baseline], [i for i in items if not i.baseline]):
            results.update(self._accuracy_group(group))
        return results

    def _accuracy_group(self, items: list[Item]) -> dict[str, Outcome]:
        results, jobs = {}, []
        for item in items:
            key = self.keys.accuracy_key(item.artifact, item.baseline)
            files = self._reference_files(item)
            cached = self.cache.get_measurement(key, files_to=files)
            if cached is not None:
                results[item.id] = Outcome("ok", result=cached, cached=True)
                continue
            self.progress.step(item.id, "measuring", f"{self.manifest.evaluation.metric.name} on the evaluation data")
            jobs.append((item, key, self.requests.accuracy_job(item.id, item.artifact, item.baseline)))
        outcomes = self.runner.run_all([job for *_, job in jobs]) if jobs else []
        for (item, key, _), outcome in zip(jobs, outcomes):
            if outcome.ok:
                self.cache.put_measurement(key, outcome.result, self._reference_files(item))
            results[item.id] = outcome
        return results

    def _reference_files(self, item: Item) -> dict | None:
        # outputs are part of the entry when something reads them: the baseline's, for a metric that compares
        # candidates with it; everyone's, when the target's outputs are compared with the host's
        if self.requests.keeps_outputs(item.baseline):
            return {"outputs.npy": self.requests.layout.outputs(item.id)}
        return None

    # -- timing -----------------------------------------------------------------------------------------
    def time(self, items: list[Item], more_rounds: Callable[[dict[str, Timed]], set[str]] = lambda timed: set(),
             ) -> dict[str, Timed]:
        """Timing of a batch: from the cache where every window of an item is there, else in rounds."""
        results: dict[str, Timed] = {}
        fresh: list[tuple[Item, str]] = []
        for item in items:
            if item.baseline:
                self._baseline_item = item
            key = self._key(item)
            cached = self.cache.get_measurement(key)
            if cached is not None:
                results[item.id] = Timed.from_json(cached)
            else:
                fresh.append((item, key))
        if fresh:
            results.update(self._time_fresh(fresh, more_rounds))
        for item in items:
            timed = results[item.id]
            if item.baseline:
                self.baseline.info = self.baseline.info or timed.info
                self.baseline.windows.update(timed.windows)
                self.baseline.error = timed.error
            else:
                self.baseline.windows.update(timed.baseline_windows)
        return results

    def _key(self, item: Item) -> str:
        paired = None if item.baseline or self._baseline_item is None else self._baseline_item.artifact
        return self.keys.timing_key(item.artifact, paired)

    def _time_fresh(self, fresh: list[tuple[Item, str]], more_rounds) -> dict[str, Timed]:
        results: dict[str, Timed] = {}
        members: list[_Member] = []
        for item, _ in fresh:
            self.progress.step(item.id, "timing", "loading the model")
            member = self._baseline_member() if item.baseline else self._open(item)
            results[item.id] = member.timed
            if not item.baseline and member.timer is not None:
                members.append(member)
        if members and self._baseline_item is not None:
            self._baseline_member()  # its timing came from the cache: it is timed again, beside the new ones
        baseline = self._baseline if self._baseline is not None and self._baseline.timer is not None else None
        solo_baseline = any(item.baseline for item, _ in fresh)
        try:
            for number in range(self.rounds):
                self._round(members, baseline, number, self.rounds)
            done = self.rounds
            while done < self.max_rounds and not solo_baseline:
                wanted = more_rounds(results)
                again = [m for m in members if m.item.id in wanted and m.timer is not None]
                if not again:
                    break
                self._round(again, baseline, done, self.max_rounds)
                done += 1
        finally:
            for member in members:
                if member.timer is not None:
                    member.timer.close()
        for item, key in fresh:
            timed = results[item.id]
            # a candidate timed without the baseline beside it has no speedup: measure it again next time
            if timed.error is None and (item.baseline or timed.baseline_windows):
                self.cache.put_measurement(key, timed.to_json())
        return results

    def runoff(self, items: list[Item], settled: Callable[[dict[str, Timed]], bool] = lambda timed: False,
               ) -> dict[str, Timed]:
        """`items` timed again side by side, beside the baseline, in up to `measure.max_rounds` rounds of their
        own, stopping after `measure.rounds` once `settled` says the rounds so far decide: never from the cache
        (their earlier windows are what could not tell them apart), and not into a candidate's own entry (its
        figures stay those its gates read). Each Timed holds the baseline's windows of the same rounds."""
        if self._baseline_item is None:
            return {}
        baseline = self._baseline_member()
        if baseline.timer is None:
            return {}
        members = []
        for item in items:
            self.progress.step(item.id, "timing", "loading the model again for the run-off")
            members.append(self._open(item))
        try:
            for number in range(self.max_rounds):
                live = [m for m in members if m.timer is not None]
                if len(live) < 2:  # nothing left to compare
                    break
                self._round(live, baseline, number, self.max_rounds)
                if number + 1 >= self.rounds and settled({m.item.id: m.timed for m in members}):
                    break
        finally:
            for member in members:
                if member.timer is not None:
                    member.timer.close()
        return {m.item.id: m.timed for m in members}

    def _open(self, item: Item) -> _Member:
        try:
            timer = self.timing_runner.open_timer(self.requests.timing_job(item.id, item.artifact))
        except TimingFailed as exc:
            return _Member(item, None, Timed(error=str(exc)))
        return _Member(item, timer, Timed(info=timer.info))

    def _baseline_member(self) -> _Member:
        """The baseline's timing process stays open for the whole build: it is timed in every round."""
        if self._baseline is None:
            self._baseline = self._open(self._baseline_item)
        return self._baseline

    def _round(self, members: list[_Member], baseline: _Member | None, number: int, of: int) -> None:
        uid = uuid.uuid4().hex[:12]  # unique across builds: cached windows from other builds never collide
        order = [m for m in members if m.timer is not None]
        if baseline is not None and baseline.timer is not None:
            order.append(baseline)
        self._shuffle.shuffle(order)
        for member in order:
            self.progress.step(member.item.id, "timing", f"round {number + 1}/{of}")
            window = self._window(member)
            if window is not None:
                member.timed.windows[uid] = window
        base_window = baseline.timed.windows.get(uid) if baseline is not None else None  # None: it failed
        for member in members:
            if base_window is not None and uid in member.timed.windows:
                member.timed.baseline_windows[uid] = base_window

    def _window(self, member: _Member) -> WindowResult | None:
        retries = 0
        while True:
            try:
                window = member.timer.window(self.windows.window(member.windows_done))
            except TimingFailed as exc:
                member.timed.error = str(exc)
                member.timer.close()
                member.timer = None
                return None
            member.windows_done += 1
            self.fresh_windows += 1
            self.log.append({"id": member.item.id, "started": window.started, "ended": window.started + window.wall_s})
            reason = interference(window)
            if reason is None:
                return window
            self.interfered_windows += 1
            if retries >= MAX_WINDOW_RETRIES or self.persistent_load:
                member.timed.interference_kept += 1
                return window
            member.timed.discarded.append(Discard(round=len(member.timed.windows) + 1, reason=reason))
            retries += 1

    @property
    def persistent_load(self) -> bool:
        """Most windows so far ran beside other work: retrying would only repeat it."""
        return self.fresh_windows >= 6 and self.interfered_windows / self.fresh_windows > PERSISTENT_LOAD_SHARE

    def close(self) -> None:
        if self._baseline is not None and self._baseline.timer is not None:
            self._baseline.timer.close()
