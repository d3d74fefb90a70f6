"""A PHI corpus in the shapes the standards and the toolkits really write, with what must not survive.

Each entry is one log text as a PACS, RIS, HL7 engine, FHIR server, identity provider or database
writes it, built from the format's own specification or the tool's documented output layout (not
from this project's workload generator):

* DICOM PS3.18 Annex F JSON model (tags as keys, ``vr`` and ``Value``, PN as ``Alphabetic`` /
  ``Ideographic`` groups, sequences as nested objects);
* DCMTK ``dcmdump`` (``(gggg,eeee) VR [value]  # len, vm Keyword``, lower-case hex in tags);
* dcm4che ``dcmdump`` (``pos: (gggg,eeee) VR #len [value] Keyword``), ``findscu`` (``#len [value]
  Description``) and dcm4che2 (``pos (gggg,eeee) VR #len *vm [value] //Description``);
* pydicom's ``repr`` of a Dataset;
* Orthanc's ``/instances/{id}/tags`` (``"gggg,eeee": {"Name", "Type", "Value"}``) and its
  ``?simplify`` form;
* HL7 v2.5 ADT^A01 (MSH, EVN, PID, NK1, PV1 with their field positions);
* FHIR R4 ``Patient`` (identifier, name, telecom, birthDate, address, contact, narrative);
* Keycloak's event log (JBoss text, quoted and unquoted) and its Quarkus JSON console format;
* PostgreSQL error lines with ``DETAIL``/``STATEMENT``;
* Korean free text as Korean hospital systems log it (labels 환자명, 성명, 생년월일, 주민등록번호, 주소).

``must_not_survive`` are exact substrings; ``must_survive`` are parts that carry no identity and that
operators need (UIDs, request ids, message types, durations), so over-masking shows too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class PhiSample:
    """One log text, what must be gone from what leaves, and what must still be there."""

    name: str
    text: str
    must_not_survive: tuple[str, ...]
    must_survive: tuple[str, ...] = ()


STUDY_UID = "1.2.392.200036.9116.2.2.2.1762893313.1029997326.945873"
SERIES_UID = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"

DICOM_JSON_MODEL = [
    {
        "0020000D": {"vr": "UI", "Value": [STUDY_UID]},
        "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
        "00080020": {"vr": "DA", "Value": ["20130409"]},
        "00080050": {"vr": "SH", "Value": ["11235813"]},
        "00080056": {"vr": "CS", "Value": ["ONLINE"]},
        "00080061": {"vr": "CS", "Value": ["CT", "PET"]},
        "00080090": {"vr": "PN", "Value": [{"Alphabetic": "^Bob^^Dr."}]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小東"}]},
        "00100020": {"vr": "LO", "Value": ["PAT-12345"]},
        "00100021": {"vr": "LO", "Value": ["Hospital A"]},
        "00100030": {"vr": "DA", "Value": ["19670701"]},
        "00100040": {"vr": "CS", "Value": ["M"]},
        "00101002": {
            "vr": "SQ",
            "Value": [
                {"00100020": {"vr": "LO", "Value": ["OTH-54321"]}, "00100021": {"vr": "LO", "Value": ["Hospital B"]}},
                {"00100020": {"vr": "LO", "Value": ["OTH-24680"]}, "00100021": {"vr": "LO", "Value": ["Hospital C"]}},
            ],
        },
        "00201206": {"vr": "IS", "Value": [4]},
    }
]
DICOM_JSON_SECRETS = (
    "Wang^XiaoDong",
    "王^小東",
    "PAT-12345",
    "19670701",
    "11235813",
    "^Bob^^Dr.",
    "OTH-54321",
    "OTH-24680",
)

HL7_ADT_A01 = "\r".join(
    [
        "MSH|^~\\&|RIS|SEOUL_HOSP|PACS|RAD|20261122010203||ADT^A01|MSG00001|P|2.5",
        "EVN|A01|20261122010203",
        "PID|1||PID-0042^^^SEOUL_HOSP^MR~ALT-9911^^^SEOUL_HOSP^PI||HONG^GILDONG^^^^^L||19800101|M|||"
        "123 Teheran-ro^^Seoul^^06234^KR^H||(02)555-1234^PRN^PH|||M||ACC-778899|900101-1234567",
        "NK1|1|HONG^CHUNHYANG^^^^^L|SPO^Spouse^HL70063|123 Teheran-ro^^Seoul^^06234^KR|010-9876-5432",
        "PV1|1|O|RAD^^^SEOUL_HOSP||||1234^KIM^DOCTOR^^^DR|5678^LEE^REFERRER|||||||||||VN-445566",
    ]
)
HL7_SECRETS = (
    "PID-0042",
    "ALT-9911",
    "HONG^GILDONG",
    "19800101",
    "123 Teheran-ro",
    "(02)555-1234",
    "ACC-778899",
    "900101-1234567",
    "HONG^CHUNHYANG",
    "010-9876-5432",
    "KIM^DOCTOR",
    "LEE^REFERRER",
    "VN-445566",
)

FHIR_PATIENT = {
    "resourceType": "Patient",
    "id": "example",
    "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>Peter James Chalmers</div>"},
    "identifier": [
        {
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "MRN-889977",
        }
    ],
    "active": True,
    "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
    "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work"}],
    "gender": "male",
    "birthDate": "1974-12-25",
    "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
    "contact": [{"name": {"family": "du Marché", "given": ["Bénédicte"]}, "telecom": [{"value": "+33 (237) 998327"}]}],
}
FHIR_SECRETS = ("MRN-889977", "Chalmers", "Peter", "(03) 5555 6473", "1974-12-25", "Erewhon", "Bénédicte", "998327")

ORTHANC_TAGS = {
    "0010,0010": {"Name": "PatientName", "Type": "String", "Value": "HONG^GILDONG"},
    "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "PID-0042"},
    "0010,0030": {"Name": "PatientBirthDate", "Type": "String", "Value": "19800101"},
    "0008,0050": {"Name": "AccessionNumber", "Type": "String", "Value": "ACC-778899"},
    "0020,000d": {"Name": "StudyInstanceUID", "Type": "String", "Value": STUDY_UID},
}

CORPUS: tuple[PhiSample, ...] = (
    # -- DICOM ---------------------------------------------------------------------------------
    PhiSample("dicom-json-model", json.dumps(DICOM_JSON_MODEL), DICOM_JSON_SECRETS, (STUDY_UID, "ONLINE")),
    PhiSample(
        "dicom-json-model-compact-in-text",
        "QIDO-RS /studies answered: " + json.dumps(DICOM_JSON_MODEL, separators=(",", ":"), ensure_ascii=False),
        DICOM_JSON_SECRETS,
        (STUDY_UID,),
    ),
    PhiSample(
        "dcmtk-dcmdump",
        "\n".join(
            [
                "# Dicom-Data-Set",
                "# Used TransferSyntax: Little Endian Explicit",
                "(0008,0020) DA [20130409]                               #   8, 1 StudyDate",
                "(0008,0050) SH [11235813]                               #   8, 1 AccessionNumber",
                "(0008,0090) PN [KIM^DOCTOR]                             #  10, 1 ReferringPhysicianName",
                "(0010,0010) PN [HONG^GILDONG]                           #  12, 1 PatientName",
                "(0010,0020) LO [PID-0042]                               #   8, 1 PatientID",
                "(0010,0030) DA [19800101]                               #   8, 1 PatientBirthDate",
                r"(0010,1000) LO [OLD-1\OLD-2]                            #  12, 2 OtherPatientIDs",
                f"(0020,000d) UI [{SERIES_UID}] #  52, 1 StudyInstanceUID",
            ]
        ),
        ("11235813", "KIM^DOCTOR", "HONG^GILDONG", "PID-0042", "19800101", "OLD-1", "OLD-2"),
        (SERIES_UID, "20130409", "# Used TransferSyntax"),
    ),
    PhiSample(
        "dcm4che-dcmdump",
        "\n".join(
            [
                "554: (0008,0050) SH #6 [ACC-77] AccessionNumber",
                "634: (0008,0090) PN #10 [KIM^DOCTOR] ReferringPhysicianName",
                "772: (0010,0010) PN #14 [HONG^GILDONG] PatientName",
                "794: (0010,0020) LO #8 [PID-0042] PatientID",
                f"814: (0020,000D) UI #52 [{SERIES_UID}] StudyInstanceUID",
            ]
        ),
        ("ACC-77", "KIM^DOCTOR", "HONG^GILDONG", "PID-0042"),
        (SERIES_UID,),
    ),
    PhiSample(
        "dcm4che-findscu",
        "(0008,0050) SH #6 [ACC-77] Accession Number\n(0010,0010) PN #14 [Prieto^Alvaro] Patient's Name\n"
        "(0010,0020) LO #8 [PID-0042] Patient ID",
        ("ACC-77", "Prieto^Alvaro", "PID-0042"),
    ),
    PhiSample(
        "dcm4che2-dump",
        "0018 (0010,0010) PN #22 *1 [DOE^JOHN ] //Patient's Name\n0048 (0010,0020) LO #12 *1 [A10008394368] //Patient ID\n"
        "0086 (0010,0030) DA #8 *1 [19621008] //Patient's Birth Date",
        ("DOE^JOHN", "A10008394368", "19621008"),
    ),
    PhiSample(
        "pydicom-repr",
        "(0010, 0010) Patient's Name                      PN: 'HONG^GILDONG'\n"
        "(0010, 0020) Patient ID                          LO: 'PID-0042'\n"
        f"(0020, 000d) Study Instance UID                  UI: {STUDY_UID}",
        ("HONG^GILDONG", "PID-0042"),
        (STUDY_UID,),
    ),
    PhiSample(
        "orthanc-tags",
        json.dumps(ORTHANC_TAGS, indent=3),
        ("HONG^GILDONG", "PID-0042", "19800101", "ACC-778899"),
        (STUDY_UID,),
    ),
    PhiSample(
        "orthanc-simplified",
        json.dumps({"PatientName": "HONG^GILDONG", "PatientID": "PID-0042", "StudyInstanceUID": STUDY_UID}),
        ("HONG^GILDONG", "PID-0042"),
        (STUDY_UID,),
    ),
    PhiSample(
        "toolkit-free-text",
        'E: Patient "DOE^JOHN" (ID PID-0042) not found; tag 00100020 value=PID-0043; Patient\'s Name: ROE^JANE',
        ("DOE^JOHN", "PID-0042", "PID-0043", "ROE^JANE"),
    ),
    PhiSample(
        "labelled-ids-without-separator",
        "C-FIND: Accession ACN-778899 matched 3 series; MRN 445566 merged into Patient ID P-9911",
        ("ACN-778899", "445566", "P-9911"),
        ("C-FIND", "3 series"),
    ),
    PhiSample(
        "key-value-other-ids-and-accession",
        "C-FIND rsp AccessionNumber=ACC-445 OtherPatientIDs=OLD-1\\OLD-2 ReferringPhysicianName=KIM^MINSU "
        "status=0xFF00 elapsed=120ms",
        ("ACC-445", "OLD-1", "OLD-2", "KIM^MINSU"),
        ("status=0xFF00", "elapsed=120ms"),
    ),
    # -- HL7 v2 ----------------------------------------------------------------------------------
    PhiSample("hl7-adt-a01", HL7_ADT_A01, HL7_SECRETS, ("ADT^A01", "MSG00001", "RAD^^^SEOUL_HOSP", "2.5")),
    PhiSample(
        "hl7-in-json-log",
        json.dumps({"level": "ERROR", "message": "ADT rejected", "hl7": HL7_ADT_A01}),
        HL7_SECRETS,
        ("ADT rejected", "MSG00001"),
    ),
    PhiSample(
        "hl7-field-keys",
        json.dumps({"PID-5": "HONG^GILDONG", "PID.7": "19800101", "PV1-19": "VN-445566", "PV1-2": "O"}),
        ("HONG^GILDONG", "19800101", "VN-445566"),
        ("PV1-2",),
    ),
    # -- FHIR R4 ---------------------------------------------------------------------------------
    PhiSample("fhir-patient", json.dumps(FHIR_PATIENT, ensure_ascii=False), FHIR_SECRETS, ("gender", "male")),
    PhiSample(
        "fhir-patient-escaped-in-log",
        json.dumps({"level": "ERROR", "message": "PUT Patient failed", "body": json.dumps(FHIR_PATIENT)}),
        FHIR_SECRETS,
        ("PUT Patient failed",),
    ),
    PhiSample(
        "fhir-observation-subject",
        json.dumps(
            {
                "resourceType": "Observation",
                "status": "final",
                "subject": {"reference": "Patient/example", "display": "Peter James Chalmers"},
            }
        ),
        ("Peter James Chalmers",),
        ("Patient/example",),
    ),
    # -- Keycloak --------------------------------------------------------------------------------
    PhiSample(
        "keycloak-jboss-quoted",
        '2026-11-22 01:02:03,456 WARN  [org.keycloak.events] (executor-thread-1) type="LOGIN_ERROR", '
        'realmId="pacs", clientId="pacs-viewer", userId="null", ipAddress="211.234.56.78", '
        'error="user_not_found", auth_method="openid-connect", username="hong.gildong", '
        'redirect_uri="https://viewer.example.kr/"',
        ("hong.gildong", "211.234.56.78"),
        ("LOGIN_ERROR", "user_not_found"),
    ),
    PhiSample(
        "keycloak-json-console",
        json.dumps(
            {
                "timestamp": "2026-11-22T01:02:03.456Z",
                "sequence": 8411,
                "loggerClassName": "org.jboss.logging.Logger",
                "loggerName": "org.keycloak.events",
                "level": "WARN",
                "message": "type=LOGIN_ERROR, realmId=pacs, clientId=pacs-viewer, userId=null, "
                "ipAddress=10.0.3.7, error=invalid_user_credentials, username=kim.minsu, "
                "auth_session_parent_id=0a1b2c, authSessionId=3d4e",
                "threadName": "executor-thread-3",
            }
        ),
        ("kim.minsu",),
        ("invalid_user_credentials", "10.0.3.7"),
    ),
    # -- PostgreSQL / RDS -------------------------------------------------------------------------
    PhiSample(
        "postgres-detail-and-statement",
        "2026-11-22 01:02:03 UTC:10.0.1.23(53412):pacs_app@pacs:[12345]:ERROR:  duplicate key value violates unique "
        'constraint "patients_mrn_key"\n'
        "2026-11-22 01:02:03 UTC:10.0.1.23(53412):pacs_app@pacs:[12345]:DETAIL:  Key (mrn)=(MRN-998877) already exists.\n"
        "2026-11-22 01:02:03 UTC:10.0.1.23(53412):pacs_app@pacs:[12345]:STATEMENT:  INSERT INTO patients (mrn, name, birth) "
        "VALUES ('MRN-998877', '홍길동', '1980-01-01')",
        ("MRN-998877", "홍길동", "1980-01-01"),
        ("patients_mrn_key", "pacs_app@pacs"),
    ),
    PhiSample(
        "postgres-failing-row",
        "2026-11-22 01:02:03 UTC::@:[777]:DETAIL:  Failing row contains (42, Kim Minsu, 1980-02-03, null).",
        ("Kim Minsu", "1980-02-03"),
    ),
    # -- Korean free text -----------------------------------------------------------------------
    PhiSample(
        "korean-labels",
        "[검사등록] 환자명: 홍길동, 생년월일: 1980.01.01, 주민등록번호: 800101-1234567, 연락처: 010-1234-5678, "
        "주소: 서울특별시 강남구 테헤란로 123",
        ("홍길동", "1980.01.01", "800101-1234567", "010-1234-5678", "테헤란로 123"),
        ("[검사등록]",),
    ),
    PhiSample(
        "korean-no-separator",
        "성명 김철수 보호자명 이영희 등록번호 12345678 CT 접수",
        ("김철수", "이영희", "12345678"),
        ("CT 접수",),
    ),
    PhiSample(
        "korean-rrn-forms",
        "주민번호 900101 1234567 / 900101\u20132234567 / 9001011234568",
        ("900101 1234567", "900101\u20132234567", "9001011234568"),
    ),
    # -- Spellings of promised kinds -------------------------------------------------------------
    PhiSample(
        "phones",
        "call 010.1234.5678 or 01098765432 or (02) 555-1234 or 0312345678",
        ("010.1234.5678", "01098765432", "(02) 555-1234", "0312345678"),
    ),
    PhiSample(
        "secrets",
        'pass=s3cr3t --password hunter2 비밀번호=qwer1234 Authorization: Token tok-9f8e password is "pw-42" '
        "Authorization: Bearer onlyletterstokenabc JSESSIONID=0A1B2C3D; KEYCLOAK_SESSION=pacs/abc/def",
        ("s3cr3t", "hunter2", "qwer1234", "tok-9f8e", "pw-42", "onlyletterstokenabc", "0A1B2C3D", "pacs/abc/def"),
    ),
    PhiSample(
        "aws-key-pair-without-names",
        "creds AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ),
    PhiSample(
        "cards-all-brands",
        "visa 4111111111111111 mc 2223003122003222 amex 378282246310005 jcb 3530111333300000 "
        "diners 30569309025904 unionpay 6200000000000005",
        (
            "4111111111111111",
            "2223003122003222",
            "378282246310005",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
        ),
    ),
    PhiSample(
        "numbers-as-json-numbers",
        json.dumps({"card": 4111111111111111, "rrn": 9001011234568, "password": 123456}),
        ("4111111111111111", "9001011234568", "123456"),
    ),
    PhiSample(
        "escaped-at-sign",
        '{"level":"ERROR","message":"mail to kim\\u0040hospital.kr failed"}',
        ("kim\\u0040hospital.kr", "kim@hospital.kr"),
    ),
    PhiSample(
        "long-names-and-addresses",
        "PatientName=Ludwig van der Berg-Smith Jr. III PatientAddress=123 Main St, Apt 4, Springfield 04524 "
        "study=1.2.840.10008.5.1.4.1.1.2",
        ("Ludwig", "Berg-Smith", "III", "123 Main St", "Apt 4", "Springfield", "04524"),
        ("study=1.2.840.10008.5.1.4.1.1.2",),
    ),
    PhiSample(
        "birth-dates-in-free-text",
        "DOB: 03/14/1987; born 14 Mar 1987; date of birth 1987-03-14; 생년월일 1987년 3월 14일",
        ("03/14/1987", "14 Mar 1987", "1987-03-14", "1987년 3월 14일"),
    ),
    PhiSample(
        "public-ip-private-kept",
        "client 211.234.56.78 via alb 10.0.2.15 v6 2001:db8:85a3::8a2e:370:7334",
        ("211.234.56.78", "2001:db8:85a3::8a2e:370:7334"),
        ("10.0.2.15",),
    ),
)

# Lines that carry no identity and must come out exactly as they went in.
CLEAN_LINES: tuple[str, ...] = (
    f'{{"level":"INFO","message":"stored instance","sopInstanceUid":"{SERIES_UID}","duration":123}}',
    f"2026-11-22 01:02:03,456 INFO [pacs.dicom] request_id=7f3c2a1e-9b8d-4c6f-a5e4-3d2c1b0a9f8e DICOM processed "
    f"study_uid={STUDY_UID} duration=842",
    '2026-11-22T01:02:03.456Z 7f3c2a1e INFO "Request completed" 6200',
    "START RequestId: 3f2b9c1e-8a4d-4e2f-9b1a-0c7d6e5f4a3b Version: $LATEST",
    "REPORT RequestId: 3f2b9c1e-8a4d-4e2f-9b1a-0c7d6e5f4a3b\tDuration: 12.34 ms\tBilled Duration: 13 ms",
    "C-STORE-RQ from CT_SCANNER_1 (10.0.12.34:104) status=0x0000 elapsed=35ms",
    "MSH|^~\\&|RIS|SEOUL_HOSP|PACS|RAD|20261122010203||ORM^O01|MSG00002|P|2.5",
    "환자 검사 저장 완료",
    '{"level":"INFO","event":"llm_call","model":"gpt-4o-mini","prompt_tokens":812,"completion_tokens":164,"total_tokens":976}',
    "GET /dicom-web/studies/1.2.840.113619.2.55.3.604688119/series?limit=100 200 84ms",
)
