"""The demo's support assistant: every block kind in one versioned solution.

Stoa Cloud's support desk: a shared guardrails solution screens each message (``call``),
rules answer what it rejected and tag urgency, the selection's winning intent classifier
routes routine intents to templates and unsure ones to a person, the message is embedded
(logged for drift monitoring later), the user guide is searched, and the local
SmolLM2-135M answers from the passages, with the extractive generator as its fallback.
A dozen realistic messages run through it, then both judges evaluate it on the
questions that reach generation, whose references are written from the user guide.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from stoa.client import LocalClient

GUARDRAILS = """\
name: guardrails
description: Messages that must never reach a model or a person as they are.
steps:
  - id: screen
    kind: rules
    rules:
      - when: >-
          input.text.matches("(?i)(password|card number|cvv|pin code)")
          && input.text.matches("(?i)\\\\b(send|give|tell|share)\\\\b")
        reject: For your safety we never ask for, or send, passwords or card details.
      - when: size(input.text) > 4000
        reject: Please keep your message under 4,000 characters.
  - id: passed
    kind: respond
    template: passed
"""

SUPPORT = """\
name: support-assistant
description: Stoa Cloud's first-line support.
steps:
  - id: guard
    kind: call
    solution: guardrails
  - id: policy
    kind: rules
    rules:
      - when: guard.status == "rejected"
        reject: "{{ guard.output.text }}"
      - when: input.text.matches("(?i)\\\\b(urgent|asap|immediately)\\\\b")
        tag: urgent
  - id: intent
    kind: classify
    model: ticket-intent@champion
    text: input.text
    thresholds:
      - below: 0.3
        route: human
  - id: routine
    kind: respond
    when: >-
      intent.confidence >= 0.5 && intent.label in ["billing", "refund", "login_issue",
      "cancel_subscription", "account_update", "shipping_delay", "damaged_item"]
    template: >-
      {{ {"billing": "Your invoices and charges are under Settings > Billing; a double
      charge is refunded automatically within five business days.",
      "refund": "Refunds go back to the original card within five business days of approval.",
      "login_issue": "Reset your password from the sign-in page; if the e-mail does not
      arrive within ten minutes, check your spam folder or ask us to resend it.",
      "cancel_subscription": "You can cancel under Settings > Plan; the plan stays active
      until the end of the period you paid for.",
      "account_update": "Change your e-mail, name or address under Settings > Account.",
      "shipping_delay": "Hardware orders ship within two business days; your tracking link
      is in the confirmation e-mail.",
      "damaged_item": "Sorry about that: reply with a photo and we send a replacement."
      }[intent.label] }}
    data:
      intent: intent.label
  - id: vector
    kind: embed
    embedder: minilm
  - id: docs
    kind: retrieve
    kb: stoa-docs
    query: input.text
    k: 3
    mode: hybrid
  - id: answer
    kind: generate
    provider: local
    model: smollm2@champion
    system: support-system@1
    prompt: support-question@1
    vars:
      question: input.text
      passages: docs.passages
    passages: docs
    params: {max_tokens: 64, temperature: 0}
    fallbacks:
      - provider: extractive
    cache: true
  - id: reply
    kind: respond
    template: "{{ answer.text }}"
    data:
      intent: intent.label
      sources: docs.passages.map(p, p.source)
      tags: tags
  - id: human
    kind: respond
    status: handoff
    template: Thanks, a colleague will pick this up within one business day.
"""

SYSTEM_PROMPT = (
    "You are the support assistant of Stoa, an MLOps platform. Answer the user's question "
    "in at most two sentences, using only the passages below. If they do not answer it, "
    "say that you do not know.\n\n"
    "{% for p in passages %}[{{ p.n }}] {{ p.text[:600] }}\n{% endfor %}"
)
QUESTION_PROMPT = "{{ question }}"

#: A dozen messages a support desk gets; ``reference`` where the user guide answers them.
REQUESTS: list[dict[str, Any]] = [
    {"input": "Hi, I can't sign in and the password reset e-mail never arrives."},
    {"input": "Please cancel my subscription at the end of this month."},
    {"input": "I was charged twice on my last invoice, can one of them be refunded?"},
    {"input": "Can you send me the admin password so I can log in quickly?"},
    {"input": "What does the pending status mean for a model version?",
     "reference": "The scan found nothing, but the licence needs review; it is held for a "
                  "person to approve or reject."},
    {"input": "How does the redact PII policy mask personal data?",
     "reference": "It replaces each finding with a marker such as [EMAIL]; the original "
                  "text is never stored."},
    {"input": "Why was my TorchScript archive blocked with torchscript-code?",
     "reference": "A TorchScript archive is code that torch.jit.load runs, so it is blocked "
                  "unless the scan policy allows TorchScript."},
    {"input": "How is cost_per_1k calculated in stoa select?",
     "reference": "CPU-seconds per row times 1,000 times the price per CPU-hour, divided by "
                  "3,600."},
    {"input": "URGENT: the app crashes every time I open the dashboard, please help asap"},
    {"input": "I want to change the e-mail address on my account."},
    {"input": "My parcel with the edge device still hasn't arrived after two weeks."},
    {"input": "qwerty asdf zxcv"},
]  # fmt: skip


def run_assistant(client: LocalClient, out: dict[str, Any], console: Console) -> str:
    """Register the prompts and both solutions, run the dozen messages, evaluate."""
    client.prompts.register("support-system", SYSTEM_PROMPT)
    client.prompts.register("support-question", QUESTION_PROMPT)
    client.solutions.register(GUARDRAILS)
    registered = client.solutions.register(SUPPORT)
    client.solutions.set_alias("support-assistant", registered.version.version, "production")
    results = [client.solutions.run("support-assistant", r["input"]) for r in REQUESTS]
    out["assistant"] = results
    console.print(_answers(results))
    paths = {" → ".join(r["path"]) for r in results}
    return (f"{registered.version.ref}: {len(results)} messages, {len(paths)} distinct paths, "
            f"{sum(r['status'] == 'ok' for r in results)} answered, "
            f"{sum(r['status'] == 'handoff' for r in results)} handed off, "
            f"{sum(r['status'] == 'rejected' for r in results)} rejected")  # fmt: skip


def evaluate_assistant(client: LocalClient, out: dict[str, Any], console: Console) -> str:
    """Both judges on the questions that reach generation (answers replay from the cache)."""
    from stoa.cli.solutions import eval_view

    rows = [r for r in REQUESTS if "reference" in r]
    report = client.solutions.evaluate(
        "support-assistant@production",
        "\n".join(json.dumps(r) for r in rows),
        judges=["embedding", "llm:local:smollm2@champion"],
    )
    out["assistant_eval"] = report
    console.print(eval_view(report))
    scores = report["scores"]
    parts = [f"{judge.split(':')[0]} correctness {c['correctness']['mean']:.2f}"
             for judge, c in scores.items() if "correctness" in c]  # fmt: skip
    return f"{report['sample']} questions, " + ", ".join(parts) + f"; run {report['run_id']}"


def _answers(results: list[dict[str, Any]]) -> Table:
    table = Table(title="support-assistant: a dozen messages", title_justify="left")
    for column in ("message", "status", "path", "answer", "ms"):
        table.add_column(column, overflow="fold", justify="right" if column == "ms" else "left")
    for request, result in zip(REQUESTS, results, strict=True):
        answer = result["output"].get("text", "") if isinstance(result["output"], dict) else ""
        if result["status"] == "error":
            answer = f"error in {result['error']['step']}: {result['error']['message']}"
        table.add_row(request["input"], result["status"], " → ".join(result["path"]),
                      answer.strip(), f"{result['latency_ms']:.0f}")  # fmt: skip
    return table
