"""A SMART App Launch 2.x standalone launch against the running platform, driven by an
independent OAuth client library (Authlib) as a third-party app would drive it, with the
sign-in page's form posted as a browser would post it.

Run by bin/polyclinic/tests/api/smart.rs, which sets the platform up and passes in:
FHIR_BASE, CLIENT_ID, NARROW_CLIENT_ID, REDIRECT_URI, PATIENT_LOGIN, PATIENT_PASSWORD,
PATIENT_ID, PATIENT_TOKEN (the patient's own first-party token, for the REST grant list),
OTHER_PATIENT_ID, APPOINTMENT_ID, PRESCRIPTION_ID. Exits non-zero at the first failed
check, printing what it saw.
"""

import os
import sys
import time
import warnings
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*authlib.jose.*")
from authlib.jose import JsonWebKey, jwt  # noqa: E402

ENV = os.environ
FHIR = ENV["FHIR_BASE"]
REDIRECT = ENV["REDIRECT_URI"]


def step(text):
    print(f"- {text}", flush=True)


def expect(condition, what, seen=None):
    if not condition:
        print(f"FAILED: {what}\nseen: {seen!r}", flush=True)
        sys.exit(1)


class Form(HTMLParser):
    """The sign-in page's form: its action and every input's name and value."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("name") and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value", "")


def authorize(config, client_id, scope, decision="allow", password=None):
    """Runs the authorization request to the redirect. Returns (session, verifier, location)."""
    session = OAuth2Session(
        client_id,
        redirect_uri=REDIRECT,
        scope=scope,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(64)
    url, state = session.create_authorization_url(
        config["authorization_endpoint"], code_verifier=verifier, aud=FHIR
    )
    page = requests.get(url, allow_redirects=False)
    expect(page.status_code == 200, "the sign-in page is shown", (page.status_code, page.text[:500]))
    expect("text/html" in page.headers["content-type"], "the page is HTML", page.headers)
    form = Form()
    form.feed(page.text)
    expect(form.fields.get("state") == state, "the form carries the app's state on", form.fields)
    answer = dict(form.fields)
    answer.update(
        username=ENV["PATIENT_LOGIN"],
        password=password if password is not None else ENV["PATIENT_PASSWORD"],
        decision=decision,
    )
    posted = requests.post(urljoin(url, form.action), data=answer, allow_redirects=False)
    return session, verifier, state, page.text, posted


def main():
    step("discovery: the SMART configuration at the FHIR base")
    config = requests.get(f"{FHIR}/.well-known/smart-configuration", headers={"accept": "application/json"}).json()
    for capability in ["launch-standalone", "client-public", "context-standalone-patient", "permission-v2", "sso-openid-connect"]:
        expect(capability in config["capabilities"], f"capability {capability}", config)
    expect("S256" in config["code_challenge_methods_supported"], "PKCE S256", config)
    metadata = requests.get(f"{FHIR}/metadata").json()
    expect(metadata["resourceType"] == "CapabilityStatement", "the CapabilityStatement", metadata)

    step("a wrong password shows the page again and gives the app nothing")
    _, _, _, _, posted = authorize(config, ENV["CLIENT_ID"], "openid fhirUser launch/patient offline_access patient/*.rs", password="not the password")
    expect(posted.status_code == 401, "401 with the page", (posted.status_code, posted.headers))
    expect("location" not in posted.headers, "no redirect", posted.headers)

    step("the patient signs in and allows: code + PKCE -> tokens with the patient context")
    scope = "openid fhirUser launch/patient offline_access patient/*.rs"
    session, verifier, state, page, posted = authorize(config, ENV["CLIENT_ID"], scope)
    expect("Read your health records" in page, "the page says what the app asks for", page[:2000])
    expect(posted.status_code == 303, "303 back to the app", (posted.status_code, posted.text[:500]))
    location = posted.headers["location"]
    expect(location.startswith(REDIRECT), "to its redirect URI", location)
    query = parse_qs(urlparse(location).query)
    expect(query["state"] == [state], "with its state", query)
    token = session.fetch_token(config["token_endpoint"], authorization_response=location, code_verifier=verifier)
    expect(token.get("patient") == ENV["PATIENT_ID"], "the patient context", token)
    expect(set(token["scope"].split()) == set(scope.split()), "the scopes granted", token)
    expect("refresh_token" in token, "a refresh token (offline_access)", token)

    step("the ID token verifies with the provider's JWKS and names the patient's FHIR resource")
    keys = JsonWebKey.import_key_set(requests.get(config["jwks_uri"]).json())
    claims = jwt.decode(token["id_token"], keys)
    claims.validate()
    expect(claims["aud"] == ENV["CLIENT_ID"], "the ID token is for the app", claims)
    expect(claims["fhirUser"] == f"{FHIR}/Patient/{ENV['PATIENT_ID']}", "fhirUser", claims)
    userinfo = session.get(config["userinfo_endpoint"]).json()
    expect(userinfo["fhirUser"] == claims["fhirUser"], "userinfo agrees", userinfo)

    step("the app reads the patient's Patient, Appointment and MedicationRequest")
    patient = session.get(f"{FHIR}/Patient/{token['patient']}").json()
    expect(patient["resourceType"] == "Patient" and patient["id"] == ENV["PATIENT_ID"], "the Patient", patient)
    appointments = session.get(f"{FHIR}/Appointment", params={"patient": f"Patient/{token['patient']}"}).json()
    ids = [entry["resource"]["id"] for entry in appointments.get("entry", [])]
    expect(ENV["APPOINTMENT_ID"] in ids, "the patient's appointment", appointments)
    requests_found = session.get(f"{FHIR}/MedicationRequest", params={"patient": f"Patient/{token['patient']}"}).json()
    groups = {entry["resource"]["groupIdentifier"]["value"] for entry in requests_found.get("entry", [])}
    expect(ENV["PRESCRIPTION_ID"] in groups, "the patient's prescription", requests_found)

    step("ownership: another patient's record is 404, whatever the scopes")
    other = session.get(f"{FHIR}/Patient/{ENV['OTHER_PATIENT_ID']}")
    expect(other.status_code == 404 and other.json()["resourceType"] == "OperationOutcome", "404 OperationOutcome", other.text)

    step("a narrower app: patient/Appointment.rs reads appointments and nothing else, and writes nothing")
    narrow, narrow_verifier, _, _, posted = authorize(config, ENV["NARROW_CLIENT_ID"], "launch/patient patient/Appointment.rs")
    expect(posted.status_code == 303, "allowed", posted.text[:500])
    narrow_token = narrow.fetch_token(config["token_endpoint"], authorization_response=posted.headers["location"], code_verifier=narrow_verifier)
    expect("refresh_token" not in narrow_token, "no refresh token without offline_access", narrow_token)
    ok = narrow.get(f"{FHIR}/Appointment", params={"patient": f"Patient/{narrow_token['patient']}"})
    expect(ok.status_code == 200, "appointments are readable", ok.text)
    refused = narrow.get(f"{FHIR}/MedicationRequest", params={"patient": f"Patient/{narrow_token['patient']}"})
    expect(refused.status_code == 403, "prescriptions are not", refused.text)
    outcome = refused.json()
    expect(outcome["issue"][0]["details"]["coding"][0]["code"] == "insufficient_scope", "insufficient_scope", outcome)
    expect("insufficient_scope" in refused.headers.get("www-authenticate", ""), "the RFC 6750 challenge", refused.headers)
    write = narrow.post(f"{FHIR}/Appointment/$book", json={"resourceType": "Parameters", "parameter": []}, headers={"content-type": "application/fhir+json"})
    expect(write.status_code == 403, "no .c scope, no booking", write.text)
    head = narrow.head(f"{FHIR}/MedicationRequest", params={"patient": f"Patient/{narrow_token['patient']}"})
    expect(head.status_code == 403, "HEAD reads, and is held to the scopes too", head.status_code)

    step("an app's token is for the FHIR API only: the REST API refuses it")
    api = FHIR[: -len("/fhir")]
    for path in ["/api/appointments/mine", "/api/smart/grants/mine", "/api/users/me"]:
        refused = narrow.get(f"{api}{path}")
        expect(refused.status_code == 403 and refused.json()["code"] == "app_token_not_accepted", f"{path} refuses the app's token", refused.text)
    expect(narrow.get(config["userinfo_endpoint"]).status_code == 403, "userinfo needs openid")

    step("denying sends the app access_denied and grants nothing")
    _, _, denied_state, _, posted = authorize(config, ENV["CLIENT_ID"], scope, decision="deny")
    denied = parse_qs(urlparse(posted.headers["location"]).query)
    expect(denied.get("error") == ["access_denied"] and denied.get("state") == [denied_state], "access_denied with the state", denied)

    step("a code is good only with its PKCE verifier, and only once: a second use ends its login")
    again, _, _, _, posted = authorize(config, ENV["CLIENT_ID"], scope)
    try:
        again.fetch_token(config["token_endpoint"], authorization_response=posted.headers["location"], code_verifier=generate_token(64))
        expect(False, "a wrong verifier is refused")
    except OAuthError as err:
        expect(err.error == "invalid_grant", "invalid_grant", err.error)
    third, third_verifier, _, _, posted = authorize(config, ENV["CLIENT_ID"], scope)
    third.fetch_token(config["token_endpoint"], authorization_response=posted.headers["location"], code_verifier=third_verifier)
    expect(third.get(f"{FHIR}/Patient/{ENV['PATIENT_ID']}").status_code == 200, "the code's login reads")
    replay = OAuth2Session(ENV["CLIENT_ID"], redirect_uri=REDIRECT, token_endpoint_auth_method="none")
    try:
        replay.fetch_token(config["token_endpoint"], authorization_response=posted.headers["location"], code_verifier=third_verifier)
        expect(False, "a used code is refused")
    except OAuthError as err:
        expect(err.error == "invalid_grant", "invalid_grant", err.error)
    deadline = time.time() + 30
    while third.get(f"{FHIR}/Patient/{ENV['PATIENT_ID']}").status_code != 401:
        expect(time.time() < deadline, "the login of a replayed code is ended within 30 s")
        time.sleep(0.5)

    step("refresh: a new access token that works")
    refreshed = session.refresh_token(config["token_endpoint"])
    expect(refreshed["access_token"] != token["access_token"], "a new access token", refreshed)
    expect(session.get(f"{FHIR}/Patient/{ENV['PATIENT_ID']}").status_code == 200, "it reads")

    step("the patient lists the apps they allowed and revokes the narrow one")
    rest = {"authorization": f"Bearer {ENV['PATIENT_TOKEN']}"}
    grants = requests.get(f"{api}/api/smart/grants/mine", headers=rest).json()
    by_app = {grant["client_id"]: grant for grant in grants}
    expect(set(by_app) == {ENV["CLIENT_ID"], ENV["NARROW_CLIENT_ID"]}, "both apps are listed", grants)
    deleted = requests.delete(f"{api}/api/smart/grants/{by_app[ENV['NARROW_CLIENT_ID']]['id']}", headers=rest)
    expect(deleted.status_code == 204, "revoked", deleted.text)
    deadline = time.time() + 30
    while narrow.get(f"{FHIR}/Appointment", params={"patient": f"Patient/{ENV['PATIENT_ID']}"}).status_code != 401:
        expect(time.time() < deadline, "the revoked app's token is refused within 30 s")
        time.sleep(0.5)

    step("revocation (RFC 7009) of the refresh token ends the app's login")
    session.revoke_token(config["revocation_endpoint"], token=session.token["refresh_token"], token_type_hint="refresh_token")
    try:
        session.refresh_token(config["token_endpoint"])
        expect(False, "a revoked login cannot be refreshed")
    except OAuthError as err:
        expect(err.error == "invalid_grant", "invalid_grant", err.error)
    deadline = time.time() + 30
    while session.get(f"{FHIR}/Patient/{ENV['PATIENT_ID']}").status_code != 401:
        expect(time.time() < deadline, "the ended login's access token is refused within 30 s")
        time.sleep(0.5)
    print("SMART standalone launch: every check passed", flush=True)


if __name__ == "__main__":
    main()
