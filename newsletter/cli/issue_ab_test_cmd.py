"""`newsletter issue ab-test`: start a subject-line test, follow it, decide it early."""

from __future__ import annotations

import threading
from typing import Any

import click

from newsletter.accounts.actors import cli_actor
from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.session import transaction
from newsletter.delivery import subject_tests as phases
from newsletter.delivery.preflight import preflight
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import SendReport, send_issue
from newsletter.engagement import subject_tests as rules
from newsletter.issues.assembly import get_issue
from newsletter.providers.factory import make_provider
from newsletter.runtime import Runtime
from newsletter.worker import stop_on_signals


@click.command("ab-test")
@click.argument("issue_ref", metavar="ISSUE")
@click.option("--subject-ja", "subjects_ja", multiple=True, metavar="TEXT",
              help="A Japanese subject; give one per arm (2 to 5).")  # fmt: skip
@click.option("--subject-en", "subjects_en", multiple=True, metavar="TEXT",
              help="An English subject; as many as --subject-ja, paired by position.")  # fmt: skip
@click.option("--sample", default="20%", show_default=True,
              help="Share of the audience that tests the subjects (1% to 50%).")  # fmt: skip
@click.option("--wait", default="2h", show_default=True,
              help="How long readers have after the sample is sent: 10m to 24h, like 30m, "
              "2h, 1d; 0: wait for --decide-now.")  # fmt: skip
@click.option("--metric", type=click.Choice(rules.METRICS), default="clicks", show_default=True,
              help="Unique reader clicks or opens per accepted email.")  # fmt: skip
@click.option("--decide-now", is_flag=True, help="Decide a waiting test now; send the winner.")
@click.option("--status", "show_status", is_flag=True, help="Show the test and its results.")
@click.option("--enqueue", is_flag=True, help="Only queue the batches; workers send them.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_app
@handle_errors
def ab_test_cmd(
    app: AppContext,
    issue_ref: str,
    subjects_ja: tuple[str, ...],
    subjects_en: tuple[str, ...],
    sample: str,
    wait: str,
    metric: str,
    decide_now: bool,
    show_status: bool,
    enqueue: bool,
    as_json: bool,
) -> None:
    """Test subject lines on a sample of ISSUE's audience, then send the winner to the rest.

    A random SAMPLE of the audience is split evenly across the subjects and sent at once.
    WAIT after the sample is sent, the subject with the most unique reader clicks (or opens)
    per accepted email wins (a tie: the first given) and everyone else gets it; the scheduler
    decides, or --decide-now. The list must record the metric (`newsletter lists update SLUG
    --click-tracking on`).
    """
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        issue_id = get_issue(session, issue_ref).id
    if show_status:
        if subjects_ja or subjects_en or decide_now:
            raise click.UsageError("--status shows the test: give no subjects and no --decide-now")
        _print_test(runtime, issue_id, as_json)
        return
    if decide_now:
        if subjects_ja or subjects_en:
            raise click.UsageError("--decide-now decides the running test: give no subjects")
        _decide(app, runtime, issue_id, enqueue, as_json)
        return
    plan = rules.plan_test(subjects_ja, subjects_en, sample, wait, metric)
    config = SendConfig.from_settings(app.settings)
    inline = not (enqueue or app.settings.workers == "external")
    provider = make_provider(app.settings)
    try:
        preflight(app.settings, provider)
        with transaction(runtime.sessions) as session:
            report = phases.start_test(
                session, app.settings, runtime.clock, cli_actor(), issue_id, plan,
                batch_size=config.batch_size,
            )  # fmt: skip
        if not as_json:
            click.echo(
                f"issue {issue_id}: subject-line test started: {report.sample} of "
                f"{report.eligible} subscribers ({plan.sample_percent}%) in {plan.arms} arms ("
                + " / ".join(f"{rules.arm_label(a)} {n}" for a, n in enumerate(report.arms))
                + f"), metric {plan.metric}"
            )
        sent = _send(runtime, provider, issue_id, config) if inline else None
    finally:
        provider.close()
    _after_send(runtime, issue_id, sent, as_json, inline)


def _decide(app: AppContext, runtime: Runtime, issue_id: int, enqueue: bool, as_json: bool) -> None:
    config = SendConfig.from_settings(app.settings)
    inline = not (enqueue or app.settings.workers == "external")
    provider = make_provider(app.settings)
    try:
        preflight(app.settings, provider)
        with transaction(runtime.sessions) as session:
            report = phases.decide_test(
                session, app.settings, runtime.clock, cli_actor(), issue_id, early=True,
                batch_size=config.batch_size,
            )  # fmt: skip
        if not as_json:
            click.echo(
                f"issue {issue_id}: subject {rules.arm_label(report.winner_arm)} won; "
                f"{report.added} more recipients get it"
            )
        sent = _send(runtime, provider, issue_id, config) if inline else None
    finally:
        provider.close()
    _after_send(runtime, issue_id, sent, as_json, inline)


def _send(runtime: Runtime, provider: Any, issue_id: int, config: SendConfig) -> SendReport:
    stop = threading.Event()
    with stop_on_signals(stop):
        return send_issue(
            runtime, runtime.settings, provider, issue_id, runtime.clock, config=config, stop=stop
        )


def _after_send(
    runtime: Runtime, issue_id: int, sent: SendReport | None, as_json: bool, inline: bool
) -> None:
    if as_json:
        _print_test(runtime, issue_id, True, sent)
        return
    if sent is not None:
        click.echo(
            f"issue {issue_id}: {sent.accepted} accepted, {sent.failed} failed, "
            f"{sent.skipped} skipped in {sent.seconds:.1f}s"
        )
    elif not inline:
        click.echo(f"issue {issue_id}: queued; start `newsletter worker` to send it")
    _print_test(runtime, issue_id, False)


def _print_test(
    runtime: Runtime, issue_id: int, as_json: bool, sent: SendReport | None = None
) -> None:
    with transaction(runtime.sessions) as session:
        data = rules.describe_test(session, rules.get_test(session, issue_id))
    if as_json:
        if sent is not None:
            data["send"] = {"accepted": sent.accepted, "failed": sent.failed,
                            "skipped": sent.skipped, "in_doubt": sent.in_doubt}  # fmt: skip
        emit_json(data)
        return
    click.echo(rules.status_line(data, runtime.settings.timezone))
    metric = data["metric"]
    for arm in data["arms"]:
        winner = " (winner)" if arm["arm"] == data["winner_arm"] else ""
        click.echo(
            f"  {arm['label']}{winner}: {arm['accepted']} of {arm['sent']} accepted, "
            f"{metric} {arm[metric]}, rate {arm['rate']:.2%}"
        )
        for lang in ("ja", "en"):
            click.echo(f"     {lang}: {arm['subjects'][lang]}")


COMMANDS: list[click.Command] = [ab_test_cmd]
