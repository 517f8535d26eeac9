"""Value vocabularies of the generated data: names, places, catalogue sizes, mixes.

Plain data, read by the generator and by docs/sandbox.md's tables.
"""

from __future__ import annotations

FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Chris", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Paul", "Emily",
    "Alice", "Olivia", "Noah", "Emma", "Liam", "Sophia", "Lucas", "Mia", "Ethan", "Ava",
    "José", "Zoë", "Søren", "Chloé", "Björn", "Amélie", "Jürgen", "Inès", "Mateo", "Aiko",
    "Priya", "Arjun", "Wei", "Mei", "Kwame", "Amara", "Fatima", "Omar", "Leila", "Yusuf",
)

# Smith is common on purpose: `"smith"` is the reference's search example.
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Smith", "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson",
    "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "King",
    "O'Brien", "Müller", "Schmidt", "Dubois", "Rossi", "Nakamura", "Kim", "Singh", "Patel", "Nguyen",
    "Smithson", "Goldsmith", "Okafor", "Silva", "Santos", "Kowalski", "Novak", "Larsen", "Andersson", "Costa",
)

# (domain, weight)
EMAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("gmail.com", 40), ("yahoo.com", 12), ("outlook.com", 10), ("icloud.com", 8), ("hotmail.com", 6),
    ("example.com", 8), ("proton.me", 3), ("gmx.de", 4), ("web.de", 3), ("orange.fr", 3), ("acme.io", 3),
)

# (country code, weight, [(city, state, zip prefix, phone prefix)])
PLACES: tuple[tuple[str, int, tuple[tuple[str, str, str, str], ...]], ...] = (
    ("US", 50, (
        ("New York", "NY", "100", "+1 212"), ("Los Angeles", "CA", "900", "+1 213"),
        ("San Francisco", "CA", "941", "+1 415"), ("Austin", "TX", "787", "+1 512"),
        ("Chicago", "IL", "606", "+1 312"), ("Miami", "FL", "331", "+1 305"), ("Denver", "CO", "802", "+1 303"),
    )),
    ("CA", 8, (("Toronto", "ON", "M5V", "+1 416"), ("Vancouver", "BC", "V6B", "+1 604"))),
    ("GB", 10, (("London", "England", "SW1", "+44 20"), ("Manchester", "England", "M1", "+44 161"))),
    ("DE", 8, (("Berlin", "BE", "101", "+49 30"), ("Munich", "BY", "803", "+49 89"))),
    ("FR", 5, (("Paris", "IDF", "750", "+33 1"), ("Lyon", "ARA", "690", "+33 4"))),
    ("AU", 6, (("Sydney", "NSW", "200", "+61 2"), ("Melbourne", "VIC", "300", "+61 3"))),
    ("BR", 4, (("São Paulo", "SP", "010", "+55 11"),)),
    ("IN", 4, (("Bengaluru", "KA", "560", "+91 80"), ("Mumbai", "MH", "400", "+91 22"))),
    ("JP", 3, (("Tokyo", "Tokyo", "100", "+81 3"),)),
    ("NG", 2, (("Lagos", "LA", "100", "+234 1"),)),
)

STREETS: tuple[str, ...] = (
    "Main St", "Oak Ave", "Maple Rd", "Cedar Ln", "Elm St", "Park Ave", "Lake Dr", "Hill Rd",
    "Sunset Blvd", "Market St", "Friedrichstraße", "Rue de Rivoli", "High Street", "King St",
)
LINE_2: tuple[str, ...] = ("Suite 100", "Suite 250", "Apt 4B", "Apt 12", "Unit 7", "Floor 3")

# (code, share of customers who used it)
COUPONS: tuple[tuple[str, float], ...] = (
    ("WELCOME10", 0.10), ("SPRING24", 0.06), ("BLACKFRIDAY", 0.05), ("SUMMER25", 0.03),
    ("VIP50", 0.01), ("FRIEND20", 0.02), ("LAUNCH2024", 0.015), ("FREESHIP", 0.005),
)

# Engagement category (None: no open data, never emailed) and its share.
ENGAGEMENT: tuple[tuple[str | None, float], ...] = (
    ("healthy", 0.30), ("passive", 0.22), ("unengaged", 0.18), ("inactive", 0.12), (None, 0.18),
)
# Days since the last open, by category; inactive and None never opened.
LAST_OPEN_DAYS: dict[str, tuple[int, int]] = {"healthy": (0, 30), "passive": (31, 90), "unengaged": (91, 365)}
# Chance that a delivered broadcast is opened, by category.
OPEN_RATE: dict[str, float] = {"healthy": 0.55, "passive": 0.25, "unengaged": 0.06, "inactive": 0.0}

# How many of each kind exist: ids run 1..N.
COUNTS: dict[str, int] = {
    "tag": 40, "offer": 12, "product": 8, "form": 6, "event": 5,
    "assessment": 6, "broadcast": 12, "newsletter": 4, "sequence": 6,
}

# Share of a site's customers holding item k of a kind: max(0.4%, base / k**power).
POPULARITY: dict[str, tuple[float, float]] = {
    "tag": (0.45, 0.9), "offer": (0.30, 0.8), "product": (0.35, 0.8), "form": (0.25, 0.7), "event": (0.12, 0.5),
    "assessment": (0.15, 0.6), "newsletter": (0.45, 0.8), "sequence": (0.20, 0.7),
}
MIN_SHARE = 0.004
# Splits of holders: active product, passed assessment, still subscribed to the newsletter.
SPLITS: dict[str, float] = {"product": 0.85, "assessment": 0.70, "newsletter": 0.88}
# Each broadcast reaches between these shares of the customers with email data.
BROADCAST_REACH: tuple[float, float] = (0.15, 0.45)

TAG_NAMES: tuple[str, ...] = (
    "Lead", "Newsletter", "Customer", "VIP Customer", "Webinar Attendee", "Free Trial", "Podcast Listener",
    "Course Graduate", "Affiliate", "Coaching Client", "Community Member", "Black Friday 2024", "Cart Abandoned",
    "Referral", "Beta Tester", "Workshop 2023", "Masterclass", "Challenge Participant", "Quiz Taker", "Summit 2024",
)
PRODUCT_TYPES: tuple[tuple[str, int], ...] = (
    ("Course", 1), ("Coaching", 2), ("Community", 3), ("Podcast", 4), ("Membership", 5),
)
# Offer prices in cents; offers 1 and 4 are free lead magnets.
OFFER_PRICES: tuple[int, ...] = (0, 9700, 19700, 0, 4700, 49700, 2700, 99700, 14700, 29700, 3900, 199700)
