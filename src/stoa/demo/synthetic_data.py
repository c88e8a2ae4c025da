"""Seeded generators for the two demo datasets of model selection.

The demo may not download anything, and committed data files drift from the code
that describes them, so both sets are generated here, deterministically, from a
seed: the same seed gives the same frame on every machine (only ``random.Random``
and ``numpy.random.default_rng`` are used, and nothing iterates a set).

Support tickets (``support_tickets``, text classification, 2,400 rows by default)
    Columns: ``ticket_id``, ``body``, ``intent`` (the label), ``channel``
    (email 45 %, chat 35 %, web 20 %) and ``created_at`` (ISO date in 2024).

    Nine intents with fixed proportions (exact counts, largest remainder):
    billing 17 %, shipping_delay 16 %, refund 13 %, login_issue 13 %,
    product_question 11 %, cancel_subscription 9 %, bug_report 9 %,
    account_update 7 %, damaged_item 5 %.

    Each ticket's core is one or two sentences drawn from its intent's templates,
    filled with slots (products, plans, amounts, order numbers, dates, names,
    carriers, devices, browsers, features, error messages, e-mail addresses).
    Around it sit parts that carry no signal: greetings, preambles, closings,
    sign-offs and channel boilerplate ("Sent from my iPhone", web-form headers);
    e-mails mostly greet and sign off, chats rarely do.
    Noise, drawn per ticket (vague and paraphrase exclude each other; a short
    ticket replaces the whole body, so the rates of vague, paraphrase, two topics,
    run-on and typos are among the other tickets; the rest combine freely):

    - vague, 8 %: the core is a sentence shared by a group of intents ("There's a
      problem with my order" could be shipping_delay, damaged_item or refund), so
      no reader can be sure of the label;
    - paraphrase, 30 %: the core uses only templates that avoid the intent's
      obvious keywords;
    - two topics, 15 %: a sentence of another intent is added (half the time a
      passing aside, half the time a full complaint); the label stays the primary
      intent;
    - short, 4 %: the whole body is a few words ("help!!", "refund pls"); half of
      these are generic and carry no signal at all;
    - run-on, 6 %: sentence punctuation dropped, sentences chained with "and"/"so";
    - typos, 15 %: one to three words get a letter swapped, dropped or doubled;
    - casing, 10 % all lower case and 3 % all upper case;
    - label noise, 4 %: ``intent`` is replaced by a different, random intent
      (``support_ticket_records`` keeps the true one and the noise kinds).

    TF-IDF (word 1-2-grams, sublinear tf) with logistic regression reaches a
    macro-F1 of 0.89 on a stratified 20 % split of the default set (0.87-0.90 with
    seeds 1-5); the tests hold it within 0.80-0.93.

Customer churn (``churn``, tabular binary classification, 3,000 rows by default)
    Columns: ``customer_id``, the features and the target. Features:
    ``tenure_months`` (1-72), ``monthly_charges`` (USD),
    ``total_charges`` (USD, missing for 4 % of customers, so pipelines must
    impute), ``contract`` (month-to-month 52 %, one-year 26 %, two-year 22 %),
    ``payment_method``, ``support_tickets_90d``, ``num_products`` (1-4),
    ``has_discount``, ``paperless_billing``, ``region`` and ``last_login_days``.
    The target ``churned`` (0/1) is Bernoulli with probability
    ``sigmoid(z + e)``, ``e ~ Normal(0, 0.5)`` and

    ``z = 0.4 - 0.075 * tenure_months + 0.04 * (monthly_charges - 65)
    - 1.6 [one-year] - 3.2 [two-year] + 0.9 [electronic check]
    + 0.6 * support_tickets_90d - 0.35 * (num_products - 1) - 0.7 [has_discount]
    + 0.06 * min(last_login_days, 60) + 0.2 [region west]``.

    ``paperless_billing`` and the other regions carry no signal. The churn rate is
    25 % (24-26 % with seeds 1-5). Gradient boosting (scikit-learn's
    ``HistGradientBoostingClassifier``, defaults) reaches a ROC-AUC of 0.85 on a
    stratified 20 % split of the default set (0.80-0.87 with seeds 1-5); the tests
    hold it within 0.80-0.90.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# ---------------------------------------------------------------- tickets: labels

INTENT_SHARES: dict[str, float] = {
    "billing": 0.17,
    "shipping_delay": 0.16,
    "refund": 0.13,
    "login_issue": 0.13,
    "product_question": 0.11,
    "cancel_subscription": 0.09,
    "bug_report": 0.09,
    "account_update": 0.07,
    "damaged_item": 0.05,
}
CHANNEL_SHARES: dict[str, float] = {"email": 0.45, "chat": 0.35, "web": 0.20}

VAGUE_RATE = 0.08
PARAPHRASE_RATE = 0.30
TWO_TOPIC_RATE = 0.15
SHORT_RATE = 0.04
RUN_ON_RATE = 0.06
TYPO_RATE = 0.15
LOWER_RATE = 0.10
UPPER_RATE = 0.03
LABEL_NOISE_RATE = 0.04


@dataclass(frozen=True)
class IntentText:
    """The sentences one intent is written with.

    ``core`` name the problem plainly, ``paraphrase`` avoid its obvious keywords,
    ``short`` are whole tickets of a few words, and ``aside`` is how the topic is
    mentioned in passing inside a ticket about something else.
    """

    core: tuple[str, ...]
    paraphrase: tuple[str, ...]
    short: tuple[str, ...]
    aside: tuple[str, ...]


INTENT_TEXT: dict[str, IntentText] = {
    "billing": IntentText(
        core=(
            "I was charged twice for my {plan} plan this month.",
            "There's a charge of {amount} on my card that I don't recognise.",
            "My invoice from {date} shows {amount} but my plan is supposed to be cheaper.",
            "Why did my bill go up to {amount}? Nobody told me about a price change.",
            "I see a duplicate payment of {amount} on my credit card statement.",
            "Can you explain the extra fee on my latest invoice?",
            "The billing page says I owe {amount} but I already paid.",
            "I was billed for the {plan} plan even though I downgraded.",
            "My card was charged {amount} on {date} and I have no idea what for.",
            "Please send me a corrected invoice, the VAT number is missing.",
            "I think there's a billing error, I paid {amount} instead of the promo price.",
            "The tax on my last invoice looks wrong.",
            "Can I get a receipt for my payment of {amount} on {date}?",
        ),
        paraphrase=(
            "Looking at my bank statement, {amount} went out to you on {date} and I "
            "can't match it to anything I bought.",
            "Somebody explain why the amount taken from my account keeps changing.",
            "The number in the statement you emailed doesn't match what the website "
            "advertised for {plan}.",
            "My card got hit two times for the same thing.",
            "I'm paying more than my neighbour for the exact same {plan} package, what gives?",
        ),
        short=("charged twice!!", "billing question", "wrong charge on my card", "invoice wrong"),
        aside=(
            "Also my last invoice looked a bit high.",
            "I also noticed a strange charge of {amount}, but that can wait.",
        ),
    ),
    "refund": IntentText(
        core=(
            "I'd like a refund for the {product} I returned on {date}.",
            "I returned order {order} {days} days ago and still haven't received my refund.",
            "Please refund the {amount} for the {product}, it didn't work for me.",
            "How long does a refund take to show up on my card?",
            "You promised me a refund of {amount} but nothing has arrived.",
            "I want my money back for order {order}.",
            "The refund was only partial, I'm still missing {amount}.",
            "Can I get a refund instead of store credit for the {product}?",
            "I sent the {product} back with the prepaid label, when will I be refunded?",
            "Requesting a full refund for order {order}, the item is not as described.",
            "Your refund policy says 30 days and I'm within that window.",
        ),
        paraphrase=(
            "I shipped the {product} back to your warehouse on {date}; the money still "
            "isn't back in my account.",
            "Please put the {amount} back on my card, I don't want the {product} anymore.",
            "Your team said the credit would be processed in 5 business days, it's been {days}.",
            "I'd like to be reimbursed, the {product} is going back.",
            "When do I get my {amount} back?",
        ),
        short=("refund pls", "where is my refund", "money back?", "refund status??"),
        aside=(
            "I'm also still waiting on a refund from an earlier return.",
            "Separately, I never got my money back for order {order}.",
        ),
    ),
    "shipping_delay": IntentText(
        core=(
            "My order {order} was supposed to arrive on {date} and it's still not here.",
            "Tracking for order {order} hasn't updated in {days} days.",
            "Where is my {product}? It's been {days} days since I ordered.",
            "The delivery estimate keeps getting pushed back for order {order}.",
            "{carrier} says the package is delayed, can you tell me what's going on?",
            "My shipment is stuck in transit at the {carrier} facility.",
            "I paid for express shipping and the {product} is now {days} days late.",
            "Order {order} shows as shipped but there's been no movement since {date}.",
            "Could you check on the status of my delivery? It's overdue.",
            "The package never arrived even though tracking said out for delivery.",
            "My {product} hasn't shipped yet and I ordered it on {date}.",
        ),
        paraphrase=(
            "I've been refreshing the tracking page for a week and it still says label created.",
            "The {product} I ordered for my son's birthday on {date} is nowhere to be seen.",
            "Still waiting. Order {order}. {days} days now.",
            "{carrier} has had my parcel sitting in a depot since {date}.",
            "It's been ages since I placed order {order} and nothing has turned up at my door.",
        ),
        short=("where is my order", "package late!!", "still no delivery", "tracking stuck"),
        aside=(
            "Also, another order of mine is running late.",
            "My {product} from {date} hasn't arrived either, by the way.",
        ),
    ),
    "login_issue": IntentText(
        core=(
            "I can't log in to my account, it says my password is incorrect.",
            "The password reset email never arrives.",
            "I'm locked out of my account after too many login attempts.",
            "The two-factor authentication code isn't working, I can't sign in.",
            "The login page just reloads when I enter my email and password on {browser}.",
            "I keep getting 'invalid credentials' even after resetting my password.",
            "I can't sign in on my {device}, it worked fine yesterday.",
            "The verification code sent to my phone expires before I can use it.",
            "My account got locked and I can't access my orders.",
            "Sign-in with Google fails with {error}.",
            "The reset password link says it has expired.",
        ),
        paraphrase=(
            "Every time I type my credentials the site tells me they're wrong, but I "
            "haven't changed them.",
            "I'm stuck on the screen asking for a 6-digit code that never comes to my phone.",
            "Can't get into my profile at all since {date}.",
            "The app kicks me back to the start screen whenever I try to get in.",
            "I forgot which email I used and now I can't get past the first screen.",
        ),
        short=("cant login", "locked out!!", "password reset not working", "can't sign in"),
        aside=(
            "Also I had trouble logging in earlier today.",
            "It took me three password resets just to get in and write this.",
        ),
    ),
    "cancel_subscription": IntentText(
        core=(
            "Please cancel my {plan} subscription effective immediately.",
            "How do I cancel my membership? I can't find the option anywhere.",
            "I want to cancel before the next renewal on {date}.",
            "Cancel my subscription and make sure I'm not charged again.",
            "The cancel button doesn't do anything, please cancel it for me.",
            "I'd like to end my {plan} plan at the end of this billing cycle.",
            "Please stop my auto-renewal, I don't want to continue.",
            "I no longer use the service, please close my subscription.",
            "I'm moving abroad and need to cancel my plan.",
            "Can you confirm my subscription is cancelled? I requested it on {date}.",
        ),
        paraphrase=(
            "I won't be needing the {plan} package anymore, please make sure it doesn't renew.",
            "Time to part ways, I don't want to be a member after this month.",
            "Please stop the recurring {plan} payments, I'm done with the service.",
            "Don't renew me on {date}. I'm switching to a competitor.",
            "I'd like to opt out of the monthly box going forward.",
        ),
        short=("cancel me", "cancel subscription", "stop my membership", "unsubscribe me pls"),
        aside=(
            "I'm honestly thinking about cancelling altogether.",
            "If this isn't fixed I'll end my {plan} subscription.",
        ),
    ),
    "product_question": IntentText(
        core=(
            "Does the {product} come with a warranty?",
            "Is the {product} compatible with my {device}?",
            "What are the dimensions of the {product}?",
            "Will the {product} be back in stock soon?",
            "Can the {product} be used outdoors?",
            "Is there a bigger size of the {product} available?",
            "What's the difference between the {product} and the Pro version?",
            "Does the {product} include batteries or a charger?",
            "I'm thinking of buying the {product}, is it dishwasher safe?",
            "Do you sell replacement parts for the {product}?",
            "What colours does the {product} come in?",
            "How long does the battery on the {product} last?",
        ),
        paraphrase=(
            "Before I buy, I'd like to know how heavy the {product} is.",
            "Would the {product} fit in a small apartment?",
            "My {device} is a couple of years old, would the {product} still work with it?",
            "Thinking about getting the {product} as a gift, is it suitable for kids?",
            "Curious what material the {product} is made of.",
        ),
        short=("is this in stock?", "question about a product", "warranty?", "does it fit"),
        aside=(
            "Also, does the {product} come in black?",
            "While I have you: is the {product} waterproof?",
        ),
    ),
    "bug_report": IntentText(
        core=(
            "When I click {feature} I get {error}.",
            "The app crashes every time I open {feature} on my {device}.",
            "{feature} is broken on {browser}, nothing happens when I click it.",
            "I found a bug: {feature} shows {error} since the last update.",
            "The page freezes when I try to use {feature}.",
            "Images don't load on the product pages in {browser}.",
            "The mobile app crashes on launch after updating.",
            "{feature} shows the wrong data, looks like a bug.",
            "Getting {error} whenever I try to save my changes.",
            "The website layout is broken on my {device}, buttons overlap.",
            "Since {date} {feature} just shows {error}.",
        ),
        paraphrase=(
            "Something is off with {feature}: I tap it and the screen just goes grey.",
            "{feature} worked last week and now it doesn't respond at all.",
            "On {browser} I see {error} the moment I open {feature}, on my {device} it's fine.",
            "The app closes itself whenever I scroll down the home screen.",
            "Pretty sure something went wrong in your last release.",
        ),
        short=("app crashing", "site broken", "error 500", "bug in the app"),
        aside=(
            "By the way, the app also crashed on me once.",
            "Side note: {feature} gave me {error} too.",
        ),
    ),
    "account_update": IntentText(
        core=(
            "I need to change the email address on my account to {email}.",
            "How do I update my shipping address?",
            "Please update my phone number on file.",
            "I got married and need to change the name on my account to {name} {surname}.",
            "Can you change my default payment method to a different card?",
            "I'd like to update my delivery address for future orders.",
            "How can I change my username?",
            "Please merge my two accounts, one of them uses {email}.",
            "I want to update my communication preferences and stop marketing emails.",
            "Can I change the account holder to my partner {name}?",
        ),
        paraphrase=(
            "I moved last month, so everything should now go to my new place in {city}.",
            "My contact details are out of date, the right inbox is {email}.",
            "Please make sure future parcels go to my office instead of home.",
            "The name shown on my profile is misspelled, it should be {name}.",
            "I've got a new mobile number and want it on file.",
        ),
        short=("change my email", "update address", "new phone number", "edit profile?"),
        aside=(
            "I also need to update my address at some point.",
            "And please note my new email is {email}.",
        ),
    ),
    "damaged_item": IntentText(
        core=(
            "My {product} arrived damaged, the box was crushed.",
            "The {product} I received is broken out of the box.",
            "Order {order} arrived with a cracked {product}.",
            "The {product} has scratches all over it, it looks used.",
            "I received the wrong item, I ordered a {product}.",
            "Parts are missing from my {product}.",
            "The {product} stopped working after one day.",
            "The screen on my {product} was shattered when I opened the package.",
            "Received my {product} today and it's defective.",
        ),
        paraphrase=(
            "Opened the parcel for order {order} and the {product} was in pieces.",
            "The {product} came with a big dent in the side.",
            "There's liquid leaking out of the {product} box, it must have been dropped.",
            "What turned up is not what I picked, this isn't a {product}.",
        ),
        short=("item broken", "arrived damaged", "wrong item received", "defective!!"),
        aside=(
            "On top of that, one item in the box had a scratch.",
            "The {product} in the same order was dented too.",
        ),
    ),
}

# Sentences shared by a group of intents: a ticket made of one of these could be any of them.
VAGUE_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "order": (
        ("shipping_delay", "damaged_item", "refund"),
        (
            "There's a problem with my order {order}.",
            "I need help with order {order}.",
            "Can someone look into my recent order? Something isn't right.",
            "I'm not happy with how order {order} went.",
        ),
    ),
    "account": (
        ("login_issue", "account_update", "bug_report"),
        (
            "Something is wrong with my account.",
            "I need help with my account, please.",
            "My profile isn't working the way it should.",
            "There's an issue with my account settings.",
        ),
    ),
    "money": (
        ("billing", "cancel_subscription", "refund"),
        (
            "I have a question about my subscription payments.",
            "Please call me about my {plan} plan.",
            "I'm not happy with what I'm paying for {plan}.",
            "Can we talk about the money side of my account?",
        ),
    ),
    "product": (
        ("product_question", "damaged_item", "bug_report"),
        (
            "I have a question about the {product}.",
            "The {product} isn't what I expected.",
            "Can someone help me with my {product}?",
        ),
    ),
}

GENERIC_SHORT = ("help!!", "hello?", "urgent please respond", "???", "anyone there", "hi")

# ------------------------------------------------------------ tickets: no signal

# fmt: off
GREETINGS = (
    "Hi,", "Hello,", "Hi there,", "Dear Support,", "Hey", "Good morning,",
    "To whom it may concern,", "Hi team,", "Hello Northwind support,", "Dear Sir or Madam,",
)
PREAMBLES = (
    "I hope you're doing well.", "I've been a customer for {months} months.",
    "Sorry to bother you again.", "This is my second time writing about this.",
    "I've already tried the help center.", "Quick question.", "I'm really frustrated.",
    "I love your store, but here's my problem.", "My name is {name} {surname}.",
)
CLOSINGS = (
    "Thanks in advance.", "Please help.", "Looking forward to your reply.", "Any help appreciated!",
    "Thank you!", "Please get back to me ASAP.", "Cheers.",
)
SIGN_OFFS = (
    "Best,\n{name}", "Thanks,\n{name}", "Regards, {name} {surname}", "- {name}", "{name}",
)
EMAIL_FOOTERS = (
    "Sent from my iPhone", "Sent from my Galaxy",
    "--\nThis email and any attachments are confidential.",
)
WEB_HEADERS = (
    "[Submitted via contact form | Browser: {browser}]", "Category: Other\nMessage:",
    "Topic: General enquiry\nDetails:",
)

# ------------------------------------------------------------- tickets: slot fillers

PRODUCTS = (
    "wireless earbuds", "standing desk", "espresso machine", "yoga mat", "4K monitor",
    "running shoes", "air fryer", "mechanical keyboard", "backpack", "smart watch", "blender",
    "desk lamp", "phone case", "winter jacket", "coffee grinder", "office chair",
    "bluetooth speaker", "water bottle", "laptop stand", "robot vacuum",
)
PLANS = (
    "Basic", "Plus", "Premium", "Family", "Pro", "Team",
)
NAMES = (
    "Anna", "Ben", "Carla", "David", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
)
SURNAMES = (
    "Smith", "Garcia", "Nguyen", "Müller", "Okafor", "Rossi", "Kowalski", "Tanaka",
)
CARRIERS = (
    "UPS", "FedEx", "DHL", "USPS", "The courier",
)
DEVICES = (
    "iPhone", "Android phone", "iPad", "Windows laptop", "MacBook", "Chromebook",
)
BROWSERS = (
    "Chrome", "Firefox", "Safari", "Edge",
)
FEATURES = (
    "the export button", "search", "the checkout page", "notifications", "the dark mode toggle",
    "the wishlist", "order history", "the invoice download", "the cart", "the review form",
)
ERRORS = (
    "error 500", "a blank white screen", "'something went wrong'", "error code E-1042",
    "a spinning wheel forever", "a timeout",
)
CITIES = (
    "Leeds", "Austin", "Lyon", "Porto", "Toronto", "Melbourne", "Dublin", "Osaka",
)
MAIL_DOMAINS = (
    "gmail.com", "outlook.com", "yahoo.com", "proton.me",
)
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
# fmt: on

YEAR_START = dt.date(2024, 1, 1)
TICKET_COLUMNS = ("ticket_id", "body", "intent", "channel", "created_at")


@dataclass(frozen=True)
class TicketRecord:
    """One generated ticket, with what the frame hides: its true intent and its noise."""

    ticket_id: str
    body: str
    intent: str
    true_intent: str
    channel: str
    created_at: str
    noise: tuple[str, ...]


def exact_counts(shares: dict[str, float], n: int) -> dict[str, int]:
    """Counts summing to ``n`` in the given shares (largest remainder), so proportions are
    exact rather than sampled, and every class has its documented size."""
    raw = {key: share * n / sum(shares.values()) for key, share in shares.items()}
    counts = {key: int(value) for key, value in raw.items()}
    by_remainder = sorted(raw, key=lambda key: (counts[key] - raw[key], key))
    for key in by_remainder[: n - sum(counts.values())]:
        counts[key] += 1
    return counts


def _weighted(rng: random.Random, shares: dict[str, float]) -> str:
    """One key of ``shares``, drawn in its documented proportion."""
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _slots(rng: random.Random) -> dict[str, str]:
    """One ticket's fillers, drawn once so every mention within a ticket agrees."""
    name = rng.choice(NAMES)
    day = YEAR_START + dt.timedelta(days=rng.randrange(366))
    date_styles = (
        f"{MONTHS[day.month - 1]} {day.day}",
        f"{day.month}/{day.day}",
        day.isoformat(),
        "last Tuesday",
        "the weekend",
    )
    return {
        "product": rng.choice(PRODUCTS),
        "plan": rng.choice(PLANS),
        "amount": f"${rng.randint(5, 400)}.{rng.randrange(100):02d}",
        "order": rng.choice(("#", "", "no. ")) + str(rng.randint(100000, 999999)),
        "date": rng.choice(date_styles),
        "days": str(rng.randint(3, 21)),
        "months": str(rng.randint(2, 60)),
        "name": name,
        "surname": rng.choice(SURNAMES),
        "email": f"{name.lower()}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}",
        "carrier": rng.choice(CARRIERS),
        "device": rng.choice(DEVICES),
        "browser": rng.choice(BROWSERS),
        "feature": rng.choice(FEATURES),
        "error": rng.choice(ERRORS),
        "city": rng.choice(CITIES),
    }


def _core(rng: random.Random, text: IntentText, paraphrase: bool) -> list[str]:
    """One or two distinct sentences stating the problem."""
    pool = text.paraphrase if paraphrase else text.core + text.paraphrase
    return rng.sample(pool, k=rng.choice((1, 1, 2)))


def _vague(rng: random.Random, intent: str) -> list[str]:
    """A core that a group of intents share, so no reader could be sure of the label."""
    groups = [sentences for intents, sentences in VAGUE_GROUPS.values() if intent in intents]
    return [rng.choice(rng.choice(groups))]


def _secondary(rng: random.Random, intent: str) -> str:
    """The secondary topic of a two-topic ticket: half the time an aside, half the time a
    full sentence of another intent, which is what makes such tickets truly ambiguous."""
    other = INTENT_TEXT[rng.choice([key for key in INTENT_TEXT if key != intent])]
    return rng.choice(other.aside if rng.random() < 0.5 else other.core)


def _frame_sentences(rng: random.Random, channel: str, core: list[str]) -> list[str]:
    """Wrap the core in what each channel adds around it, none of which names the intent."""
    greet, sign = {"email": (0.85, 0.7), "chat": (0.4, 0.0), "web": (0.3, 0.3)}[channel]
    parts: list[str] = []
    if channel == "web" and rng.random() < 0.6:
        parts.append(rng.choice(WEB_HEADERS))
    if rng.random() < greet:
        parts.append(rng.choice(GREETINGS))
    if rng.random() < (0.2 if channel == "chat" else 0.45):
        parts.append(rng.choice(PREAMBLES))
    parts.extend(core)
    if rng.random() < (0.25 if channel == "chat" else 0.6):
        parts.append(rng.choice(CLOSINGS))
    if rng.random() < sign:
        parts.append(rng.choice(SIGN_OFFS))
    if channel == "email" and rng.random() < 0.2:
        parts.append(rng.choice(EMAIL_FOOTERS))
    return parts


def _run_on(sentences: list[str], rng: random.Random) -> str:
    """Chain sentences without punctuation, as in a ticket typed in one breath."""
    bare = [re.sub(r"[.!?,;:]+(?=\s|$)", "", s).strip() for s in sentences]
    joined = bare[0]
    for sentence in bare[1:]:
        joined += rng.choice((" and ", " so ", " ")) + sentence[:1].lower() + sentence[1:]
    return joined


def add_typos(text: str, rng: random.Random, count: int) -> str:
    """Swap, drop or double a letter in ``count`` words of four or more letters."""
    words = text.split(" ")
    candidates = [i for i, word in enumerate(words) if sum(c.isalpha() for c in word) >= 4]
    for i in rng.sample(candidates, k=min(count, len(candidates))):
        word = words[i]
        pos = rng.randrange(1, len(word) - 1)
        kind = rng.choice(("swap", "drop", "double"))
        if kind == "swap":
            word = word[: pos - 1] + word[pos] + word[pos - 1] + word[pos + 1 :]
        elif kind == "drop":
            word = word[:pos] + word[pos + 1 :]
        else:
            word = word[:pos] + word[pos] + word[pos:]
        words[i] = word
    return " ".join(words)


def _short_body(rng: random.Random, intent: str) -> str:
    """A ticket of a few words; half say nothing about the intent."""
    if rng.random() < 0.5:
        return rng.choice(GENERIC_SHORT)
    return rng.choice(INTENT_TEXT[intent].short)


def _long_body(rng: random.Random, intent: str, channel: str, noise: list[str]) -> str:
    """A full ticket: framed core, maybe an aside, maybe run on, maybe typos.

    Slots are filled before the noise so a typo never lands inside a placeholder.
    """
    draw = rng.random()
    if draw < VAGUE_RATE:
        noise.append("vague")
        core = _vague(rng, intent)
    else:
        paraphrase = draw < VAGUE_RATE + PARAPHRASE_RATE
        core = _core(rng, INTENT_TEXT[intent], paraphrase)
        if paraphrase:
            noise.append("paraphrase")
    if rng.random() < TWO_TOPIC_RATE:
        noise.append("two_topics")
        other = _secondary(rng, intent)
        core = [other, *core] if rng.random() < 0.3 else [*core, other]
    slots = _slots(rng)
    sentences = [part.format_map(slots) for part in _frame_sentences(rng, channel, core)]
    if rng.random() < RUN_ON_RATE:
        noise.append("run_on")
        body = _run_on(sentences, rng)
    else:
        body = ("\n" if channel == "email" else " ").join(sentences)
    if rng.random() < TYPO_RATE:
        noise.append("typos")
        body = add_typos(body, rng, rng.randint(1, 3))
    return body


def _recase(body: str, rng: random.Random, noise: list[str]) -> str:
    """Lower- or upper-case the whole ticket, as phone keyboards and angry users do."""
    draw = rng.random()
    if draw < LOWER_RATE:
        noise.append("lower")
        return body.lower()
    if draw < LOWER_RATE + UPPER_RATE:
        noise.append("upper")
        return body.upper()
    return body


def _ticket(rng: random.Random, index: int, intent: str) -> TicketRecord:
    """One ticket of true intent ``intent``, with its noise drawn independently."""
    channel = _weighted(rng, CHANNEL_SHARES)
    noise: list[str] = []
    if rng.random() < SHORT_RATE:
        noise.append("short")
        body = _short_body(rng, intent)
    else:
        body = _long_body(rng, intent, channel, noise)
    body = _recase(body, rng, noise)
    label = intent
    if rng.random() < LABEL_NOISE_RATE:
        noise.append("label_noise")
        label = rng.choice([key for key in INTENT_SHARES if key != intent])
    created = YEAR_START + dt.timedelta(days=rng.randrange(366))
    return TicketRecord(
        f"TCK-{index:06d}", body, label, intent, channel, created.isoformat(), tuple(noise)
    )


def support_ticket_records(n: int = 2400, seed: int = 7) -> list[TicketRecord]:
    """The tickets with their true intents and noise kinds, for checking the generator."""
    rng = random.Random(seed)
    intents = [key for key, count in exact_counts(INTENT_SHARES, n).items() for _ in range(count)]
    rng.shuffle(intents)
    return [_ticket(rng, i + 1, intent) for i, intent in enumerate(intents)]


def support_tickets(n: int = 2400, seed: int = 7) -> pd.DataFrame:
    """Support tickets labelled with their (noisy) intent; see the module docstring."""
    records = support_ticket_records(n, seed)
    return pd.DataFrame({c: [getattr(r, c) for r in records] for c in TICKET_COLUMNS})


# -------------------------------------------------------------------------- churn

CONTRACT_SHARES: dict[str, float] = {"month-to-month": 0.52, "one-year": 0.26, "two-year": 0.22}
PAYMENT_SHARES: dict[str, float] = {
    "electronic_check": 0.33,
    "credit_card": 0.25,
    "bank_transfer": 0.22,
    "mailed_check": 0.20,
}
REGION_SHARES: dict[str, float] = {
    "north": 0.22,
    "south": 0.24,
    "east": 0.2,
    "west": 0.2,
    "central": 0.14,
}
PRODUCT_SHARES: dict[int, float] = {1: 0.35, 2: 0.35, 3: 0.2, 4: 0.1}
TOTAL_CHARGES_MISSING_RATE = 0.04


def _draw(rng: np.random.Generator, shares: dict[Any, float], n: int) -> np.ndarray:
    """``n`` draws of the keys of ``shares``, in their documented proportions."""
    return rng.choice(np.array(list(shares)), size=n, p=np.array(list(shares.values())))


def _churn_features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Customer features; charges follow tenure and products as billing would."""
    tenure = np.clip(np.round(rng.gamma(1.6, 18.0, n)), 1, 72).astype(np.int64)
    products = _draw(rng, PRODUCT_SHARES, n).astype(np.int64)
    monthly = np.clip(28 + 14 * products + rng.normal(0, 12, n), 18, 130).round(2)
    total = (tenure * monthly * rng.normal(1.0, 0.04, n)).round(2)
    total[rng.random(n) < TOTAL_CHARGES_MISSING_RATE] = np.nan
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(1, n + 1)],
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "contract": _draw(rng, CONTRACT_SHARES, n),
            "payment_method": _draw(rng, PAYMENT_SHARES, n),
            "support_tickets_90d": rng.poisson(0.9, n).astype(np.int64),
            "num_products": products,
            "has_discount": rng.random(n) < 0.3,
            "paperless_billing": rng.random(n) < 0.6,
            "region": _draw(rng, REGION_SHARES, n),
            "last_login_days": np.clip(np.round(rng.exponential(14.0, n)), 0, 180).astype(np.int64),
        }
    )


def churn_logit(frame: pd.DataFrame) -> np.ndarray:
    """The documented linear predictor of churn, before noise."""
    contract = frame["contract"].map({"month-to-month": 0.0, "one-year": -1.6, "two-year": -3.2})
    return (
        0.4
        - 0.075 * frame["tenure_months"]
        + 0.04 * (frame["monthly_charges"] - 65)
        + contract
        + 0.9 * (frame["payment_method"] == "electronic_check")
        + 0.6 * frame["support_tickets_90d"]
        - 0.35 * (frame["num_products"] - 1)
        - 0.7 * frame["has_discount"]
        + 0.06 * frame["last_login_days"].clip(upper=60)
        + 0.2 * (frame["region"] == "west")
    ).to_numpy(dtype=float)


def churn(n: int = 3000, seed: int = 11) -> pd.DataFrame:
    """Customers with a binary ``churned`` target; see the module docstring for the model."""
    rng = np.random.default_rng(seed)
    frame = _churn_features(rng, n)
    latent = churn_logit(frame) + rng.normal(0, 0.5, n)
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-latent))).astype(np.int64)
    return frame


def write_demo_data(folder: Path) -> dict[str, Path]:
    """Write ``tickets.csv`` and ``churn.csv`` into ``folder`` for the selection demo."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"tickets": folder / "tickets.csv", "churn": folder / "churn.csv"}
    support_tickets().to_csv(paths["tickets"], index=False)
    churn().to_csv(paths["churn"], index=False)
    return paths
