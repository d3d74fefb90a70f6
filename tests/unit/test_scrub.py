"""Unit tests for logpipe.scrub: bundled rules, engine behaviour, rules-file loading and validation."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from logpipe.scrub import Scrubber, ScrubRule, ScrubRulesError, load_scrub_rules
from logpipe.scrub_rules import load_scrub_config

pytestmark = pytest.mark.unit

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMAIL = "[REDACTED:email]"
PHONE = "[REDACTED:phone]"
RRN = "[REDACTED:rrn]"
CARD = "[REDACTED:card]"
JWT_MASK = "[REDACTED:jwt]"
TOKEN = "[REDACTED:token]"
AWS = "[REDACTED:aws_key]"
PASSWORD = "[REDACTED:password]"
SECRET = "[REDACTED:secret]"
DICOM = "[REDACTED:dicom]"
NAME = "[REDACTED:name]"
PERSON = "[REDACTED:person]"
HL7 = "[REDACTED:hl7]"
COOKIE = "[REDACTED:cookie]"
PATIENT = "[REDACTED:patient]"
BIRTH = "[REDACTED:birth_date]"
IP = "[REDACTED:ip]"


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    return Scrubber.default()


# ---------------------------------------------------------------------------
# Bundled rules: real-looking values are masked ...
# ---------------------------------------------------------------------------

POSITIVE: list[tuple[str, str, str]] = [
    # (rule, input, expected output)
    ("email", "contact john.doe@example.com now", f"contact {EMAIL} now"),
    ("email", '{"email": "kim.minsu+pacs@hospital.co.kr"}', f'{{"email": "{EMAIL}"}}'),
    ("email", "GET /api/users?email=john.doe%40example.com&page=2", f"GET /api/users?email={EMAIL}&page=2"),
    (
        "email",
        "https://viewer.example.com/share/jane_doe@example.org/study",
        f"https://viewer.example.com/share/{EMAIL}/study",
    ),
    ("email", "mailto:Jane.Doe@Example.COM", f"mailto:{EMAIL}"),
    ("phone", "010-1234-5678", PHONE),
    ("phone", "call 01012345678 now", f"call {PHONE} now"),
    ("phone", "office 02-123-4567", f"office {PHONE}"),
    ("phone", "office 031-987-6543.", f"office {PHONE}."),
    ("phone", "intl +82-10-1234-5678", f"intl {PHONE}"),
    ("phone", "intl +82 10 1234 5678", f"intl {PHONE}"),
    ("phone", "intl +821012345678", f"intl {PHONE}"),
    ("phone", '{"phone":"010 9876 5432"}', f'{{"phone":"{PHONE}"}}'),
    ("phone", "연락처:010-1234-5678입니다", f"연락처:{PHONE}입니다"),
    ("rrn", "900101-1234567", RRN),
    ("rrn", "rrn=851231-2345678 not found", f"rrn={RRN} not found"),
    ("rrn", '{"rrn": "020304-3456789"}', f'{{"rrn": "{RRN}"}}'),
    ("rrn", "foreigner 900101-5234567", f"foreigner {RRN}"),
    ("card", "4111111111111111", CARD),
    ("card", "card 4111 1111 1111 1111 ok", f"card {CARD} ok"),
    ("card", "card=4111-1111-1111-1111", f"card={CARD}"),
    ("card", "mc 5555555555554444", f"mc {CARD}"),
    ("card", "mc2 2223003122003222", f"mc2 {CARD}"),
    ("card", "amex 378282246310005", f"amex {CARD}"),
    ("card", "amex 3782 822463 10005", f"amex {CARD}"),
    ("card", "discover 6011111111111117", f"discover {CARD}"),
    ("card", '{"pan": "4012888888881881"}', f'{{"pan": "{CARD}"}}'),
    ("jwt", f"session {JWT} end", f"session {JWT_MASK} end"),
    ("jwt", "unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.", f"unsigned {JWT_MASK}"),
    ("jwt", f'{{"session": "{JWT}"}}', f'{{"session": "{JWT_MASK}"}}'),
    ("bearer", "Authorization: Bearer abcDEF123456789xyz", f"Authorization: Bearer {TOKEN}"),
    ("bearer", "bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a", f"bearer {TOKEN}"),
    ("bearer", "AUTHORIZATION: BEARER opaqueTokenValue", f"AUTHORIZATION: BEARER {TOKEN}"),
    ("bearer", "Authorization: Basic dXNlcjpwYXNzd29yZA==", f"Authorization: Basic {TOKEN}"),
    ("bearer", '{"Authorization": "Bearer abc.def-ghi_123"}', f'{{"Authorization": "Bearer {TOKEN}"}}'),
    ("aws_access_key", "key AKIAIOSFODNN7EXAMPLE used", f"key {AWS} used"),
    ("aws_access_key", "sts ASIAY34FZKBOKMUTVV7A", f"sts {AWS}"),
    ("aws_access_key", f"aws_secret_access_key={AWS_SECRET}", f"aws_secret_access_key={AWS}"),
    ("aws_access_key", f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}", f"export AWS_SECRET_ACCESS_KEY={AWS}"),
    ("aws_access_key", f'{{"aws_secret_access_key": "{AWS_SECRET}"}}', f'{{"aws_secret_access_key": "{AWS}"}}'),
    ("aws_access_key", f'{{"SecretAccessKey":"{AWS_SECRET}"}}', f'{{"SecretAccessKey":"{AWS}"}}'),
    ("url_password", "postgres://pacs:s3cr3t@db:5432/pacs", f"postgres://pacs:{PASSWORD}@db:5432/pacs"),
    ("url_password", "redis://:hunter2@cache:6379/0", f"redis://:{PASSWORD}@cache:6379/0"),
    ("url_password", "amqp://guest:p%40ss@mq/vhost", f"amqp://guest:{PASSWORD}@mq/vhost"),
    ("url_password", '{"dsn": "mysql://root:toor@10.0.0.5/db"}', f'{{"dsn": "mysql://root:{PASSWORD}@10.0.0.5/db"}}'),
    ("secret_kv", "password=hunter2", f"password={SECRET}"),
    ("secret_kv", "passwd: abc123 next", f"passwd: {SECRET} next"),
    ("secret_kv", "pwd=x", f"pwd={SECRET}"),
    ("secret_kv", "secret=y", f"secret={SECRET}"),
    ("secret_kv", "client_secret=z", f"client_secret={SECRET}"),
    ("secret_kv", "api_key=k", f"api_key={SECRET}"),
    ("secret_kv", "apikey=k2", f"apikey={SECRET}"),
    ("secret_kv", "access_token=t", f"access_token={SECRET}"),
    ("secret_kv", "refresh_token=r", f"refresh_token={SECRET}"),
    ("secret_kv", "token=tt", f"token={SECRET}"),
    ("secret_kv", "DB_PASSWORD=Sup3r!", f"DB_PASSWORD={SECRET}"),
    ("secret_kv", "X-Api-Key: abcdef", f"X-Api-Key: {SECRET}"),
    ("secret_kv", '{"password": "hunter2", "user": "kim"}', f'{{"password": "{SECRET}", "user": "kim"}}'),
    ("secret_kv", '{"accessToken":"abc"}', f'{{"accessToken":"{SECRET}"}}'),
    ("secret_kv", r'{"password": "a\"b"}', f'{{"password": "{SECRET}"}}'),
    ("secret_kv", "{'password': 'hunter2'}", f"{{'password': '{SECRET}'}}"),
    ("secret_kv", 'password="hunter 2" user=kim', f'password="{SECRET}" user=kim'),
    ("secret_kv", r'{"message": "{\"password\": \"hunter2\"}"}', rf'{{"message": "{{\"password\": \"{SECRET}\"}}"}}'),
    (
        "secret_kv",
        "jdbc:postgresql://db/pacs?user=pacs&password=s3cret&ssl=true",
        f"jdbc:postgresql://db/pacs?user=pacs&password={SECRET}&ssl=true",
    ),
    ("secret_kv", "token: Bearer abc123", f"token: {SECRET}"),
    ("dicom_patient", "PatientName=DOE^JOHN", f"PatientName={DICOM}"),
    ("dicom_patient", "PatientID: 12345", f"PatientID: {DICOM}"),
    ("dicom_patient", "PatientBirthDate=19900101 sex=M", f"PatientBirthDate={DICOM} sex=M"),
    ("dicom_patient", "PatientName=DOE^JOHN PatientID=12345", f"PatientName={DICOM} PatientID={DICOM}"),
    ("dicom_patient", '{"PatientName": "DOE^JOHN"}', f'{{"PatientName": "{DICOM}"}}'),
    ("dicom_patient", '{"patient_id": "P12345"}', f'{{"patient_id": "{DICOM}"}}'),
    # A name or an address runs on across spaces and commas while its words look like parts of one:
    # cutting it at the first comma or after a few words is how "DOE, JOHN" or an address leaked.
    ("dicom_patient", "Patient Name: John Doe, age 42", f"Patient Name: {DICOM}, age 42"),
    ("dicom_patient", "PatientName=DOE, JOHN Q reachable later", f"PatientName={DICOM} reachable later"),
    ("dicom_patient", "PatientName=Ludwig van der Berg-Smith II", f"PatientName={DICOM}"),
    ("dicom_patient", "PatientName=Hong Gil Dong Jr The Third study=1.2.3", f"PatientName={DICOM} study=1.2.3"),
    ("dicom_patient", "PatientAddress=123 Main St, Apt 4, Seoul 04524 status=ok", f"PatientAddress={DICOM} status=ok"),
    ("dicom_patient", "ReferringPhysicianName=DR^WHO", f"ReferringPhysicianName={DICOM}"),
    ("dicom_patient", "AccessionNumber=A12345 ok", f"AccessionNumber={DICOM} ok"),
    ("dicom_patient", "tag 00100020 value=P12345", f"tag 00100020 value={DICOM}"),
    ("dicom_patient", "Patient's Name: DOE^JOHN", f"Patient's Name: {DICOM}"),
    ("dicom_patient", "(0010,0010) PN #8 [Doe^John] PatientName", f"(0010,0010) PN #8 [{DICOM}] PatientName"),
    (
        "dicom_patient",
        "0018 (0010,0010) PN #22 *1 [DOE^JOHN ] //Patient's Name",
        f"0018 (0010,0010) PN #22 *1 [{DICOM}] //Patient's Name",
    ),
    ("dicom_patient", "(0008,0050) SH #6 [IDC023] AccessionNumber", f"(0008,0050) SH #6 [{DICOM}] AccessionNumber"),
    (
        "dicom_patient",
        '"0010,0010" : { "Name" : "PatientName", "Type" : "String", "Value" : "DOE^JOHN" }',
        f'"0010,0010" : {{ "Name" : "PatientName", "Type" : "String", "Value" : "{DICOM}" }}',
    ),
    ("korean_name", "환자명: 홍길동", f"환자명: {NAME}"),
    ("korean_name", "환자명 홍길동 검사 완료", f"환자명 {NAME} 검사 완료"),
    ("korean_name", "성명=김철수", f"성명={NAME}"),
    (
        "person",
        "type=LOGIN_ERROR, realmId=pacs, username=hong.gildong, ipAddress=10.1.2.3",
        f"type=LOGIN_ERROR, realmId=pacs, username={PERSON}, ipAddress=10.1.2.3",
    ),
    ("hl7_segments", "PID|1||12345^^^HOSP^MR||DOE^JOHN^A||19800101|M", f"PID|1||{HL7}||{HL7}||{HL7}|{HL7}"),
    ("hl7_segments", "PV1|1|O|RAD^^^HOSP||||1234^KIM^DR", f"PV1|1|O|RAD^^^HOSP||||{HL7}"),
    ("authorization", "Authorization: Token abcdef123", f"Authorization: Token {TOKEN}"),
    ("authorization", '{"authorization": "Digest 0123abcd"}', f'{{"authorization": "Digest {TOKEN}"}}'),
    ("bearer", "sent with bearer qwertyuiopasdfgh", f"sent with bearer {TOKEN}"),
    ("aws_key_pair", f"creds AKIAIOSFODNN7EXAMPLE {AWS_SECRET}", f"creds {AWS} {AWS}"),
    ("aws_key_pair", f"secret {AWS_SECRET} for key AKIAIOSFODNN7EXAMPLE", f"secret {AWS} for key {AWS}"),
    ("secret_kv", "pass=abc", f"pass={SECRET}"),
    ("secret_kv", "비밀번호=1234", f"비밀번호={SECRET}"),
    ("secret_kv", 'the password is "hunter2"', f'the password is "{SECRET}"'),
    ("cli_secret", "psql --password hunter2 -h db", f"psql --password {SECRET} -h db"),
    ("session_cookie", "JSESSIONID=abc123; Path=/", f"JSESSIONID={COOKIE}; Path=/"),
    ("session_cookie", "Cookie: KEYCLOAK_SESSION=x; other=y", f"Cookie: {COOKIE}"),
    ("email", "john\\u0040example.com", EMAIL),
    ("patient_quoted", 'Patient "DOE^JOHN" (ID 12345) stored', f'Patient "{PATIENT}" (ID {PATIENT}) stored'),
    ("labelled_id", "Accession ACN123 failed", f"Accession {DICOM} failed"),
    ("labelled_id", "accession no. A12345", f"accession no. {DICOM}"),
    ("labelled_id", "MRN 445566 ok", f"MRN {DICOM} ok"),
    ("labelled_id", "Patient ID P-42 moved", f"Patient ID {DICOM} moved"),
    ("dicom_patient", "accession=ACN1", f"accession={DICOM}"),
    ("dicom_person_name", "study of DOE^JOHN^A failed", f"study of {NAME} failed"),
    ("dicom_person_name", "Hong^Gildong=洪^吉洞=홍^길동", NAME),
    (
        "postgres_detail",
        "DETAIL:  Key (mrn)=(MRN-1) already exists.",
        "DETAIL:  Key (mrn)=([REDACTED:sql_value]) already exists.",
    ),
    ("postgres_detail", "Failing row contains (1, Kim, null).", "Failing row contains ([REDACTED:sql_value])."),
    (
        "sql_literal",
        "LOG:  statement: SELECT 1 WHERE name = 'Kim' AND x = 'it''s'",
        "LOG:  statement: SELECT 1 WHERE name = '[REDACTED:sql_value]' AND x = '[REDACTED:sql_value]'",
    ),
    ("birth_date", "DOB: 1980-01-01", f"DOB: {BIRTH}"),
    ("birth_date", "born 3 Jan 1980 in Seoul", f"born {BIRTH} in Seoul"),
    ("birth_date", "생년월일: 1980년 1월 1일", f"생년월일: {BIRTH}"),
    ("phone", "010.1234.5678", PHONE),
    ("phone", "office (02) 1234-5678", f"office {PHONE}"),
    ("phone", "office 0212345678", f"office {PHONE}"),
    ("rrn", "900101 1234567", RRN),
    ("rrn", "900101\u20131234567", RRN),
    ("rrn", "9001011234568", RRN),
    ("card", "jcb 3530111333300000", f"jcb {CARD}"),
    ("card", "diners 30569309025904", f"diners {CARD}"),
    ("card", "unionpay 6200000000000005", f"unionpay {CARD}"),
    ("card", "maestro 6759649826438453", f"maestro {CARD}"),
    ("ip_address", "client 211.234.56.78 connected", f"client {IP} connected"),
    ("ip_address", "v6 2001:db8::1 x", f"v6 {IP} x"),
    ("dicom_patient", r"OtherPatientIDs=ID1\ID2 next=1", f"OtherPatientIDs={DICOM} next=1"),
    ("dicom_patient", "(0010,0010) PN [DOE^JOHN]  # 8, 1 PatientName", f"(0010,0010) PN [{DICOM}]  # 8, 1 PatientName"),
    ("dicom_patient", "(0010,0020) LO [12345]", f"(0010,0020) LO [{DICOM}]"),
    ("dicom_patient", "(0010,0030) DA [19900101]", f"(0010,0030) DA [{DICOM}]"),
    ("dicom_patient", "(0010,0010)=DOE^JOHN", f"(0010,0010)={DICOM}"),
    ("dicom_patient", "tag 0010,0020=12345", f"tag 0010,0020={DICOM}"),
    (
        "dicom_patient",
        "(0010,0010) Patient's Name      PN: 'DOE^JOHN'",
        f"(0010,0010) Patient's Name      PN: '{DICOM}'",
    ),
    (
        "dicom_patient",
        '{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JOHN"}]}}',
        f'{{"00100010": {{"vr": "PN", "Value": [{{"Alphabetic": "{DICOM}"}}]}}}}',
    ),
    (
        "dicom_patient",
        '{"00100010":{"vr":"PN","Value":[{"Alphabetic":"HONG^GILDONG","Ideographic":"洪^吉洞","Phonetic":"홍^길동"}]}}',
        f'{{"00100010":{{"vr":"PN","Value":[{{"Alphabetic":"{DICOM}"}}]}}}}',
    ),
    (
        "dicom_patient",
        '{"00101000": {"vr": "LO", "Value": ["ID1", "ID2"]}}',
        f'{{"00101000": {{"vr": "LO", "Value": ["{DICOM}"]}}}}',
    ),
]


@pytest.mark.parametrize(("rule", "text", "expected"), POSITIVE, ids=[f"{r}:{t[:40]}" for r, t, _ in POSITIVE])
def test_bundled_rule_masks(scrubber: Scrubber, rule: str, text: str, expected: str) -> None:
    assert rule in scrubber.rule_names
    assert scrubber.scrub(text) == expected


# ---------------------------------------------------------------------------
# ... and near-miss look-alikes are left untouched (same object back)
# ---------------------------------------------------------------------------

NEGATIVE: list[tuple[str, str]] = [
    ("email", "icon@2x.png"),
    ("email", "lodash@4.17.21"),
    ("email", "user@localhost"),
    ("email", "reply to @example.com"),
    ("email", "image nginx@sha256:0b1c2d"),
    ("email", "a@b.c"),
    ("phone", "uid 1.2.840.113619.2.55.3.604688119.969.1268071029.320"),
    ("phone", "ts 2026-11-22T01:02:03.456Z"),
    ("phone", "2026-11-22 01:02:03,456 INFO started"),
    ("phone", '{"timestamp":"2026-11-22 01:02:03,456+0000"}'),
    ("phone", "epoch 1763773323456"),
    ("phone", "id 3f2b9c1e-8a4d-4e2f-9b1a-0c7d6e5f4a3b"),
    ("phone", "id 01234567-0123-4567-8901-234567890123"),
    ("phone", "duration=1234"),
    ("phone", "010-1234-567"),
    ("phone", "0101234567890"),
    ("phone", "host 10.0.12.34:104"),
    ("phone", "call 1588-1234"),
    ("rrn", "900132-1234567"),
    ("rrn", "901301-1234567"),
    ("rrn", "900101-9234567"),
    ("rrn", "123456-12345678"),
    ("rrn", "epoch 1763773323456"),
    ("card", "4111111111111112"),
    ("card", "epoch 1763773323456"),
    ("card", "epoch us 1763773323456789"),
    ("card", "span 4f3a9b2c1d0e8f7a"),
    ("card", "luhn-valid but no issuer 1234567812345670"),
    ("card", "uid 1.2.840.4111111111111111"),
    ("card", "ref x4111111111111111"),
    ("card", "account 123456789012"),
    ("jwt", "cursor eyJzdWIiOiIxMjMifQ"),
    ("jwt", "eyJabc.def"),
    ("jwt", "keyJoin.eyJx.y"),
    ("bearer", "bearer token missing"),
    ("bearer", "Bearer authentication required"),
    ("bearer", "basic information"),
    ("bearer", "Basic auth failed"),
    ("bearer", "the bearer of bad news"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPL"),
    ("aws_access_key", "akiaiosfodnn7example"),
    ("aws_access_key", "XAKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLEX"),
    ("aws_access_key", "AIDAIOSFODNN7EXAMPLE"),
    ("aws_access_key", f"blob {AWS_SECRET}"),
    ("aws_access_key", "timezone Asia/Seoul"),
    ("url_password", "http://localhost:8080/health"),
    ("url_password", "https://host/a:b@c"),
    ("secret_kv", '{"prompt_tokens": 123, "completion_tokens": 7}'),
    ("secret_kv", '"total_tokens": 50'),
    ("secret_kv", "completion_tokens=12"),
    ("secret_kv", '{"usage": {"input_tokens": 10, "output_tokens": 20}}'),
    ("secret_kv", '{"max_token": 100}'),
    ("secret_kv", "max_tokens=4096 max_token=4096"),
    ("secret_kv", '{"password": null, "token": 42}'),
    ("secret_kv", '{"has_password": true}'),
    ("secret_kv", '{"password_changed_at": "2026-01-01"}'),
    ("secret_kv", '{"passwordPolicy": {"minLength": 8}}'),
    ("secret_kv", "invalid password for user kim"),
    ("secret_kv", "tokenizer=bpe secretary=Kim"),
    ("secret_kv", 'password="" token='),
    ("dicom_patient", "PatientIdentityRemoved=YES"),
    ("rrn", "9001011234567"),
    ("ip_address", "host 10.0.12.34 and 172.16.0.9 and 192.168.1.1 and 100.64.0.1 and 127.0.0.1"),
    ("ip_address", "ula fd00::1 link fe80::1"),
    ("ip_address", "uid 1.2.840.10008.5.1.4.1.1.2"),
    ("dicom_person_name", "regex ^abc$ and 2^10"),
    ("birth_date", "born to run"),
    ("hl7_segments", "PID|1"),
    ("cli_secret", "--password-file /run/secret"),
    ("bearer", "Bearer authorization header missing"),
    ("phone", "uid 1.2.410.200001.1.10.1234.5678"),
    ("korean_name", "이름을 확인하세요"),
    ("patient_quoted", "patient record updated"),
    ("labelled_id", "accession number pending; MRN check; patient idle 123abc"),
    ("sql_literal", "it's 'fine' here"),
    ("ipv6_address", "2026-11-22 01:02:03 UTC::@:[777] std::map Foo::Bar"),
    ("dicom_person_name", "ADT^A01 ORM^O01 RAD^^^SEOUL_HOSP"),
    ("dicom_patient", '{"PatientName": null}'),
    ("dicom_patient", "patients=42 patient_count=3"),
    ("dicom_patient", "(0020,000D) UI [1.2.3]"),
    ("dicom_patient", '{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}'),
    ("dicom_patient", "(0010,0040) CS []"),
]


@pytest.mark.parametrize(("rule", "text"), NEGATIVE, ids=[f"{r}:{t[:40]}" for r, t in NEGATIVE])
def test_bundled_rule_leaves_look_alikes(scrubber: Scrubber, rule: str, text: str) -> None:
    assert rule in scrubber.rule_names
    assert scrubber.scrub(text) is text


# ---------------------------------------------------------------------------
# Whole-scrubber properties
# ---------------------------------------------------------------------------


def test_default_rule_names() -> None:
    # Key groups' generated rules first (in the file's order), then HL7, then the pattern rules.
    assert Scrubber.default().rule_names == (
        "dicom_patient",
        "korean_name",
        "person",
        "hl7_segments",
        "url_password",
        "authorization",
        "jwt",
        "bearer",
        "aws_key_pair",
        "aws_access_key",
        "secret_kv",
        "cli_secret",
        "session_cookie",
        "email",
        "patient_quoted",
        "labelled_id",
        "dicom_person_name",
        "postgres_detail",
        "sql_literal",
        "birth_date",
        "phone",
        "rrn",
        "card",
        "ip_address",
        "ipv6_address",
    )


def test_default_is_shared() -> None:
    assert Scrubber.default() is Scrubber.default()


def test_load_default_rules_matches_default_scrubber() -> None:
    assert tuple(r.name for r in load_scrub_rules()) == Scrubber.default().rule_names
    assert load_scrub_rules(None) == load_scrub_rules()


@pytest.mark.parametrize("text", [text for _, text, _ in POSITIVE], ids=[f"{r}:{t[:40]}" for r, t, _ in POSITIVE])
def test_scrub_is_idempotent(scrubber: Scrubber, text: str) -> None:
    once = scrubber.scrub(text)
    twice = scrubber.scrub(once)
    assert twice == once
    assert twice is once


@pytest.mark.parametrize(
    "text",
    [
        "",
        "START RequestId: 3f2b9c1e-8a4d-4e2f-9b1a-0c7d6e5f4a3b Version: $LATEST",
        '{"level":"INFO","message":"stored instance","sopInstanceUid":"1.2.840.113619.2.55.3.604688119.969.1268071029.320"}',
        "REPORT RequestId: x\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB",
        "2026-11-22 01:02:03,456 INFO  [storescp-3] C-STORE-RQ from CT_SCANNER_1 (10.0.12.34:104) status=0x0000",
        "환자 검사 저장 완료",
    ],
)
def test_clean_text_is_returned_as_the_same_object(scrubber: Scrubber, text: str) -> None:
    assert scrubber.scrub(text) is text


@pytest.mark.parametrize("rule", load_scrub_rules(), ids=lambda r: r.name)
def test_bundled_gates_never_hide_a_match(rule: ScrubRule) -> None:
    # Triggers and prefilters only skip work: with them removed the rule
    # must give the same result on every example, positive or negative.
    transforms = load_scrub_config().transforms
    ungated = Scrubber([dataclasses.replace(rule, triggers=(), prefilter=None)], transforms=transforms)
    gated = Scrubber([rule], transforms=transforms)
    corpus = [t for _, t, _ in POSITIVE] + [t for _, t in NEGATIVE] + [json.dumps(d) for _, d, _ in JSON_DOCS]
    mismatches = [t for t in corpus if gated.scrub(t) != ungated.scrub(t)]
    assert mismatches == []
    assert any(gated.scrub(t) != t for t in corpus)


def test_several_kinds_in_one_line(scrubber: Scrubber) -> None:
    line = (
        "user john@example.com phone 010-1234-5678 rrn 900101-1234567 card 4111111111111111 "
        f"jwt {JWT} key AKIAIOSFODNN7EXAMPLE dsn postgres://u:pw@db/x password=hunter2 PatientID=P1"
    )
    out = scrubber.scrub(line)
    for secret in ("john@", "010-1234", "900101", "4111", "eyJ", "AKIA", ":pw@", "hunter2", "=P1"):
        assert secret not in out
    for mask in (EMAIL, PHONE, RRN, CARD, JWT_MASK, AWS, PASSWORD, SECRET, DICOM):
        assert mask in out


def test_multiline_text(scrubber: Scrubber) -> None:
    text = 'Traceback (most recent call last):\n  File "app.py", line 3\nValueError: bad email bob@example.com\n'
    assert (
        scrubber.scrub(text)
        == f'Traceback (most recent call last):\n  File "app.py", line 3\nValueError: bad email {EMAIL}\n'
    )


JSON_DOCS: list[tuple[str, dict[str, Any], str]] = [
    # (kind, document, secret that must be gone)
    ("email", {"msg": "mail sent", "to": "kim@hospital.co.kr"}, "kim@hospital"),
    ("email", {"url": "https://x.example/u?e=kim%40hospital.kr"}, "kim%40"),
    ("phone", {"phone": "010-1234-5678", "n": 1}, "010-1234"),
    ("phone", {"msg": "call +82 10 1234 5678 please"}, "1234 5678"),
    ("rrn", {"rrn": "900101-1234567"}, "900101"),
    ("card", {"card": "4111 1111 1111 1111"}, "4111"),
    ("card", {"card": 4111111111111111, "amount": 10}, "4111"),
    ("card", {"cards": [4111111111111111, 5555555555554444]}, "4111"),
    ("jwt", {"session": JWT}, "eyJ"),
    ("bearer", {"headers": {"Authorization": "Bearer abcDEF123456789xyz"}}, "abcDEF"),
    ("aws_access_key", {"key": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": AWS_SECRET}, "AKIA"),
    ("url_password", {"dsn": "postgres://pacs:s3cr3t@db:5432/pacs"}, "s3cr3t"),
    ("secret_kv", {"password": 'hun"ter\\2', "api_key": "k-123", "usage": {"total_tokens": 9}}, "hun"),
    ("secret_kv", {"message": json.dumps({"password": "hunter2", "token": "abc"})}, "hunter2"),
    ("dicom_patient", {"PatientName": "DOE^JOHN", "PatientID": "12345"}, "DOE^JOHN"),
    ("dicom_patient", {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JOHN"}]}}, "DOE^JOHN"),
    ("dicom_patient", {"00101000": {"vr": "LO", "Value": ["ID1", "ID2"]}, "x": 1}, "ID2"),
    ("dicom_patient", {"message": json.dumps({"PatientName": "DOE^JOHN"})}, "DOE^JOHN"),
]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize(
    ("kind", "doc", "secret"), JSON_DOCS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(JSON_DOCS)]
)
def test_json_stays_valid(scrubber: Scrubber, kind: str, doc: dict[str, Any], secret: str, indent: int | None) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    out = scrubber.scrub(text)
    assert secret not in out
    assert "[REDACTED:" in out
    parsed = json.loads(out)
    assert parsed.keys() == doc.keys()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"card": 4111111111111111}', f'{{"card": "{CARD}"}}'),
        ('{"card":\n  4111111111111111\n}', f'{{"card":\n  "{CARD}"\n}}'),
        ('{"cards": [4111111111111111, 5555555555554444]}', f'{{"cards": ["{CARD}", "{CARD}"]}}'),
        ("[4111111111111111]", f'["{CARD}"]'),
        # Inside a string the same number must not get extra quotes.
        ('{"m": "card 4111111111111111, ok"}', f'{{"m": "card {CARD}, ok"}}'),
        ('{"m": "cards [4111111111111111, 1]"}', f'{{"m": "cards [{CARD}, 1]"}}'),
        ('{"m": "x \\" [4111111111111111]"}', f'{{"m": "x \\" [{CARD}]"}}'),
        # Not JSON at all: left as plain text.
        ("cards [4111111111111111, 1]", f"cards [{CARD}, 1]"),
    ],
)
def test_bare_json_number_is_quoted(scrubber: Scrubber, text: str, expected: str) -> None:
    out = scrubber.scrub(text)
    assert out == expected
    if text.startswith(("{", "[")):
        json.loads(out)


# ---------------------------------------------------------------------------
# Engine features, with small hand-made rules
# ---------------------------------------------------------------------------


def test_context_groups_keep_key_and_mask_value() -> None:
    rule = ScrubRule("kv", r"(?P<pre>key=)\w+(?P<post>;)", "[X]", triggers=("key=",))
    assert Scrubber([rule]).scrub("a key=value; b") == "a key=[X]; b"


def test_empty_context_groups_work_as_markers() -> None:
    rule = ScrubRule("kv", r"key=(?P<pre>)\w+", "[X]", triggers=("key",))
    assert Scrubber([rule]).scrub("key=value") == "key=[X]"


def test_context_groups_per_alternative() -> None:
    rule = ScrubRule("kv", r"a=(?P<pre_a>)\d+|<b>(?P<pre_b>)\w+(?P<post_b>)</b>", "[X]", triggers=("a=", "<b>"))
    assert Scrubber([rule]).scrub("a=1 <b>two</b>") == "a=[X] <b>[X]</b>"


def test_same_group_names_in_two_rules() -> None:
    first = ScrubRule("first", r"(?P<pre>x=)(?P<v>\d+)", "[1]")
    second = ScrubRule("second", r"(?P<pre>y=)(?P<v>\d+)", "[2]")
    assert Scrubber([first, second]).scrub("x=1 y=2") == "x=[1] y=[2]"


def test_named_backreference_and_conditional_survive_renaming() -> None:
    rule = ScrubRule("quoted", r"(?P<q>['\"])?v=(?P<pre>)\w+(?P<post>)(?(q)(?P=q))", "[X]")
    scrub = Scrubber([rule, ScrubRule("other", r"(?P<q>zz)", "[Z]")]).scrub
    assert scrub("'v=abc' v=def \"v=ghi\" zz") == "'v=[X]' v=[X] \"v=[X]\" [Z]"


def test_validator_rejection_keeps_text() -> None:
    rule = ScrubRule("card", r"\d{13,19}", "[C]", validator="luhn")
    scrub = Scrubber([rule]).scrub
    assert scrub("4111111111111111 4111111111111112") == "[C] 4111111111111112"
    text = "only 4111111111111112"
    assert scrub(text) is text


def test_luhn_validator_ignores_separators() -> None:
    rule = ScrubRule("card", r"\d{4}(?: \d{4}){3}", "[C]", validator="luhn")
    assert Scrubber([rule]).scrub("4111 1111 1111 1111") == "[C]"


def test_triggers_gate_the_rule() -> None:
    # A trigger is a promise that the rule cannot match without it; a wrong
    # promise silently disables the rule, which is what this demonstrates.
    gated = ScrubRule("word", r"secret", "[S]", triggers=("zzz",))
    text = "a secret here"
    assert Scrubber([gated]).scrub(text) is text
    assert Scrubber([gated]).scrub("zzz secret") == "zzz [S]"


def test_triggers_are_case_insensitive() -> None:
    rule = ScrubRule("word", r"[sS][eE][cC][rR][eE][tT]", "[S]", triggers=("SeCrEt",))
    assert Scrubber([rule]).scrub("a SECRET and a secret") == "a [S] and a [S]"


def test_prefilter_gates_the_rule() -> None:
    rule = ScrubRule("num", r"\d{3}", "[N]", prefilter=r"#\d")
    scrub = Scrubber([rule]).scrub
    text = "order 123"
    assert scrub(text) is text
    assert scrub("order #123") == "order #[N]"


def test_trigger_or_prefilter_opens_the_rule() -> None:
    rule = ScrubRule("num", r"\d{3}", "[N]", triggers=("no.",), prefilter=r"#\d")
    scrub = Scrubber([rule]).scrub
    assert scrub("no. 123") == "no. [N]"
    assert scrub("#123") == "#[N]"
    text = "x 123"
    assert scrub(text) is text


def test_rule_without_gates_always_runs() -> None:
    assert Scrubber([ScrubRule("num", r"\d{3}", "[N]")]).scrub("x 123") == "x [N]"


def test_ignore_case() -> None:
    rule = ScrubRule("word", r"secret", "[S]", triggers=("secret",), ignore_case=True)
    assert Scrubber([rule]).scrub("SECRET Secret") == "[S] [S]"


def test_earlier_rule_wins_at_the_same_position() -> None:
    long_rule = ScrubRule("long", r"abc", "[L]")
    short_rule = ScrubRule("short", r"ab", "[S]")
    assert Scrubber([long_rule, short_rule]).scrub("abc") == "[L]"
    assert Scrubber([short_rule, long_rule]).scrub("abc") == "[S]c"


def test_top_level_alternation_in_a_rule() -> None:
    rules = [ScrubRule("either", r"cat|dog", "[A]"), ScrubRule("bird", r"owl", "[B]")]
    assert Scrubber(rules).scrub("cat owl dog") == "[A] [B] [A]"


def test_no_rules() -> None:
    scrubber = Scrubber([])
    text = "kim@hospital.co.kr"
    assert scrubber.rule_names == ()
    assert scrubber.scrub(text) is text
    assert repr(scrubber) == "Scrubber(rules=[])"


def test_many_rule_subsets_stay_correct() -> None:
    # More distinct trigger combinations than the subset cache holds; the
    # scrubber falls back to the full regex and must give the same answers.
    rules = [ScrubRule(f"r{i}", rf"k{i}=\d+", f"[{i}]", triggers=(f"k{i}=",)) for i in range(12)]
    scrubber = Scrubber(rules)
    for a in range(12):
        for b in range(12):
            assert scrubber.scrub(f"k{a}=1 k{b}=2") == f"k{a}=1 k{b}=2".replace(f"k{a}=1", f"[{a}]").replace(
                f"k{b}=2", f"[{b}]"
            )


# ---------------------------------------------------------------------------
# Rules files
# ---------------------------------------------------------------------------


def _write(tmp_path: Path, doc: object, name: str = "rules.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def _rule(**overrides: object) -> dict[str, object]:
    rule: dict[str, object] = {"name": "ticket", "pattern": r"TCK-\d+", "replacement": "[REDACTED:ticket]"}
    rule.update(overrides)
    return rule


def test_custom_rules_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "version": 1,
            "description": "only tickets and e-mail",
            "rules": [
                _rule(triggers=["tck-"], description="internal ticket ids"),
                {
                    "name": "email",
                    # Linear: a run starts only where it starts (the loader rejects "[\w.+-]+@", quadratic).
                    "pattern": [r"(?<![\w.+-])[\w.+-]++", "@", r"[\w-]+\.[\w.]+"],
                    "replacement": "[MAIL]",
                    "triggers": ["@"],
                    "prefilter": None,
                    "ignore_case": False,
                    "validator": None,
                },
            ],
        },
    )
    rules = load_scrub_rules(path)
    assert [r.name for r in rules] == ["ticket", "email"]
    assert rules[1].pattern == r"(?<![\w.+-])[\w.+-]++@[\w-]+\.[\w.]+"
    scrubber = Scrubber(rules)
    assert (
        scrubber.scrub("TCK-42 by kim@x.org, call 010-1234-5678") == "[REDACTED:ticket] by [MAIL], call 010-1234-5678"
    )
    assert load_scrub_rules(str(path)) == rules


def test_custom_file_can_drop_all_rules(tmp_path: Path) -> None:
    rules = load_scrub_rules(_write(tmp_path, {"version": 1, "rules": []}))
    text = "kim@hospital.co.kr 010-1234-5678"
    assert rules == ()
    assert Scrubber(rules).scrub(text) is text


BAD_FILES: list[tuple[str, object, str]] = [
    # (id, document or raw text, expected message fragment)
    ("invalid-json", "{not json", "not valid JSON"),
    ("duplicate-json-key", '{"version": 1, "version": 1, "rules": []}', "duplicate key(s) 'version'"),
    ("top-not-object", [], "top level must be a JSON object"),
    ("unknown-top-key", {"version": 1, "rules": [], "extra": 1}, "unknown top-level key(s): extra"),
    ("missing-version", {"rules": []}, "'version' must be 1 or 2"),
    ("wrong-version", {"version": 3, "rules": []}, "'version' must be 1 or 2, got 3"),
    ("groups-need-v2", {"version": 1, "rules": [], "key_groups": []}, "need 'version': 2"),
    ("bool-version", {"version": True, "rules": []}, "'version' must be 1 or 2"),
    ("rules-not-list", {"version": 1, "rules": {}}, "'rules' must be a list"),
    ("rule-not-object", {"version": 1, "rules": ["x"]}, "rule #0: must be a JSON object"),
    ("unknown-rule-key", {"version": 1, "rules": [_rule(flags="i")]}, "rule 'ticket' (#0): unknown key(s): flags"),
    (
        "missing-key",
        {"version": 1, "rules": [{"name": "ticket", "pattern": "x"}]},
        "missing required key(s): replacement",
    ),
    ("name-type", {"version": 1, "rules": [_rule(name=3)]}, "rule #0: 'name' must be a string"),
    ("pattern-type", {"version": 1, "rules": [_rule(pattern=3)]}, "'pattern' must be a string or a non-empty list"),
    (
        "pattern-empty-list",
        {"version": 1, "rules": [_rule(pattern=[])]},
        "'pattern' must be a string or a non-empty list",
    ),
    ("triggers-type", {"version": 1, "rules": [_rule(triggers="tck")]}, "'triggers' must be a list of strings"),
    ("empty-trigger", {"version": 1, "rules": [_rule(triggers=[""])]}, "triggers must be non-empty strings"),
    ("prefilter-type", {"version": 1, "rules": [_rule(prefilter=1)]}, "'prefilter' must be a string or null"),
    ("ignore-case-type", {"version": 1, "rules": [_rule(ignore_case="yes")]}, "'ignore_case' must be true or false"),
    ("validator-type", {"version": 1, "rules": [_rule(validator=1)]}, "'validator' must be a string or null"),
    ("bad-regex", {"version": 1, "rules": [_rule(pattern="TCK-(\\d+")]}, "rule 'ticket': bad pattern: missing )"),
    ("bad-prefilter", {"version": 1, "rules": [_rule(prefilter="[")]}, "rule 'ticket': bad prefilter"),
    ("empty-match", {"version": 1, "rules": [_rule(pattern="x*")]}, "pattern matches the empty string"),
    ("numbered-backref", {"version": 1, "rules": [_rule(pattern=r"(a)\1")]}, "numbered back-references"),
    ("numbered-conditional", {"version": 1, "rules": [_rule(pattern=r"(a)?(?(1)b|c)")]}, "numbered group references"),
    ("global-flag", {"version": 1, "rules": [_rule(pattern="(?i)tck")]}, "cannot be combined with other rules"),
    ("replacement-quote", {"version": 1, "rules": [_rule(replacement='"X"')]}, "is not JSON-safe"),
    ("replacement-backslash", {"version": 1, "rules": [_rule(replacement="X\\Y")]}, "is not JSON-safe"),
    ("replacement-control", {"version": 1, "rules": [_rule(replacement="X\nY")]}, "is not JSON-safe"),
    ("replacement-empty", {"version": 1, "rules": [_rule(replacement="")]}, "replacement must not be empty"),
    (
        "unknown-validator",
        {"version": 1, "rules": [_rule(validator="iban")]},
        "unknown validator 'iban'; known: ip_address, luhn, rrn",
    ),
    ("duplicate-name", {"version": 1, "rules": [_rule(), _rule()]}, "rule 'ticket': duplicate rule name"),
    ("name-digit-start", {"version": 1, "rules": [_rule(name="1card")]}, "name must be letters"),
    ("name-hyphen", {"version": 1, "rules": [_rule(name="my-rule")]}, "name must be letters"),
    ("name-double-underscore", {"version": 1, "rules": [_rule(name="a__b")]}, "name must be letters"),
    ("name-too-long", {"version": 1, "rules": [_rule(name="n" * 65)]}, "at most 64 characters"),
]


@pytest.mark.parametrize(("doc", "fragment"), [(d, f) for _, d, f in BAD_FILES], ids=[i for i, _, _ in BAD_FILES])
def test_bad_rules_file(tmp_path: Path, doc: object, fragment: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(ScrubRulesError) as info:
        load_scrub_rules(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert fragment in message


def test_missing_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ScrubRulesError, match="cannot read rules file") as info:
        load_scrub_rules(path)
    assert str(path) in str(info.value)


def test_rules_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"version": 1, "rules": [], "description": "\xe9"}')
    with pytest.raises(ScrubRulesError, match="cannot read rules file"):
        load_scrub_rules(path)


def test_scrub_rules_error_is_a_value_error() -> None:
    assert issubclass(ScrubRulesError, ValueError)


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ([ScrubRule("bad name", "x", "[X]")], "name must be letters"),
        ([ScrubRule("a", "x", "[X]"), ScrubRule("a", "y", "[Y]")], "duplicate rule name"),
        ([ScrubRule("a", "(", "[X]")], "bad pattern"),
        ([ScrubRule("a", "x", 'say "x"')], "not JSON-safe"),
        ([ScrubRule("a", "x", "[X]", validator="nope")], "unknown validator"),
        ([ScrubRule("a", "x", "[X]", triggers="x")], "wrong types"),  # type: ignore[arg-type]
        ([ScrubRule("a", "x", "[X]", ignore_case=1)], "wrong types"),  # type: ignore[arg-type]
    ],
)
def test_scrubber_validates_rules_built_in_code(rules: list[ScrubRule], fragment: str) -> None:
    with pytest.raises(ScrubRulesError, match="<rules>: rule") as info:
        Scrubber(rules)
    assert fragment in str(info.value)


def test_bundled_rules_file_is_documented_and_well_formed() -> None:
    path = Path(__file__).parents[2] / "layers" / "core" / "logpipe" / "rules" / "scrub.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["version"] == 2
    for group in doc["key_groups"]:
        assert group["description"]
        assert group["replacement"].startswith("[REDACTED:")
    assert doc["hl7"]["description"]
    assert doc["fhir"]["description"]
    for rule in doc["rules"]:
        assert rule["description"]
        assert rule["replacement"].startswith("[REDACTED:")
        # Bundled rules avoid whole-rule IGNORECASE: it disables the regex
        # engine's first-character scan and costs several times more.
        assert rule["ignore_case"] is False


_NUMBER_RULES = ("phone", "rrn", "card", "ip_address")
# Digit runs broken by every separator the number rules accept, and by the characters their
# lookarounds look at, so that generated text lands on both sides of every gate.
_NUMBERISH = st.text(alphabet="0123456789 .-\u2013\u2014()+:=_aZ", min_size=0, max_size=40)
_SEPARATORS = st.sampled_from([" ", "-", ".", "\u2013", "\u2014", "", "  ", ":", "/"])
_LEADS = st.sampled_from(["0", "02", "010", "031", "070", "(02)", "(031) ", "+82 ", "4", "37", "30", "62", "9001", "1"])


@st.composite
def _grouped_numbers(draw: st.DrawFn) -> str:
    """Digit groups of the lengths numbers are written in, joined by one separator (as people write them)."""
    separator = draw(_SEPARATORS)
    lengths = draw(st.lists(st.sampled_from([1, 2, 3, 4, 4, 5, 6, 7]), min_size=1, max_size=4))
    groups = [draw(st.text(alphabet="0123456789", min_size=n, max_size=n)) for n in lengths]
    return draw(_LEADS) + separator.join(groups) + draw(st.sampled_from(["", " ", ".", "-1", "x"]))


@hypothesis_settings(max_examples=3000, derandomize=True, deadline=None)
@given(
    text=st.one_of(_NUMBERISH, _grouped_numbers()),
    prefix=st.sampled_from(["", "tel ", "id=", '"', "x", "-"]),
)
def test_number_gates_never_hide_a_match(text: str, prefix: str) -> None:
    # The prefilter of the phone, RRN and card rules skips lines without a long enough digit run;
    # with every gate removed, each of these rules must give the same result on any text.
    transforms = load_scrub_config().transforms
    rules = [r for r in load_scrub_rules() if r.name in _NUMBER_RULES]
    line = prefix + text
    for rule in rules:
        gated = Scrubber([rule], transforms=transforms)
        ungated = Scrubber([dataclasses.replace(rule, triggers=(), prefilter=None)], transforms=transforms)
        assert gated.scrub(line) == ungated.scrub(line), rule.name


@pytest.mark.parametrize(
    "number",
    [
        "02-123-4567",
        "(02) 1234-5678",
        "(02)5551234",
        "010.1234.5678",
        "01012345678",
        "0212345678",
        "+82 10 1234 5678",
        "900101-1234567",
        "900101 1234567",
        "900101\u20131234567",  # en dash
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "3782 822463 10005",
        "3056 930902 5904",
        "4222 2222 2222 2",
    ],
)
def test_the_number_prefilter_opens_on_every_accepted_shape(number: str) -> None:
    search = re.compile(next(r for r in load_scrub_rules() if r.name == "card").prefilter or "").search
    assert search(f"value {number} end") is not None
