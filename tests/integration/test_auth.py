"""Authentication on every user resource; a user never sees another user's data."""

import base64
import hashlib
import hmac
from urllib.parse import quote

import httpx
from helpers import valid_xml, xml_value

XML = {"Accept": "application/xml"}


def test_no_credentials_get_401_with_a_challenge(server, alice):
    response = httpx.get(f"{server.url}/users/{alice.login}/scannedinstances", headers=XML)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert xml_value(valid_xml(response, "uforgeError"), "statusCode") == "401"


def test_wrong_password_gets_401(server, alice):
    response = httpx.get(f"{server.url}/users/{alice.login}", auth=(alice.login, "wrong"), headers=XML)
    assert response.status_code == 401


def test_unknown_user_gets_401(server):
    response = httpx.get(f"{server.url}/users/nobody", auth=("nobody", "x"), headers=XML)
    assert response.status_code == 401


def test_a_user_cannot_see_another_users_resources(server, alice, bob):
    with server.client(alice) as client:
        created = client.post(f"/users/{alice.login}/scannedinstances", json={"name": "secret"},
                              headers={"Accept": "application/json"})
        siid = created.json()["dbId"]
    with server.client(bob) as client:
        for path in (f"/users/{alice.login}", f"/users/{alice.login}/scannedinstances",
                     f"/users/{alice.login}/scannedinstances/{siid}", f"/users/{alice.login}/scans"):
            assert client.get(path, headers=XML).status_code == 404, path
        assert client.delete(f"/users/{alice.login}/scannedinstances/{siid}").status_code == 404
        # bob's own path with alice's instance id: it does not exist for him either
        assert client.get(f"/users/{bob.login}/scannedinstances/{siid}", headers=XML).status_code == 404
    with server.client(alice) as client:
        assert client.get(f"/users/{alice.login}/scannedinstances/{siid}").status_code == 200


def test_missing_entitlement_gets_403(server):
    carol = server.add_user(entitled=False)
    with server.client(carol) as client:
        response = client.get(f"/users/{carol.login}/scannedinstances", headers=XML)
        assert response.status_code == 403
        assert "migration_access" in xml_value(valid_xml(response, "uforgeError"), "localizedErrorMsg/message")
        assert client.get(f"/users/{carol.login}", headers=XML).status_code == 200


def test_an_administrator_may_act_on_any_user(server, alice):
    admin = server.add_user(admin=True)
    with server.client(admin) as client:
        created = client.post(f"/users/{alice.login}/scannedinstances", json={"name": "by-admin"},
                              headers={"Accept": "application/json"})
        assert created.status_code == 201
        assert client.get(f"/users/{alice.login}/scannedinstances/{created.json()['dbId']}").status_code == 200
    with server.client(alice) as client:
        listing = client.get(f"/users/{alice.login}/scannedinstances", headers={"Accept": "application/json"})
        assert [i["name"] for i in listing.json()["scannedInstances"]] == ["by-admin"]


def signed(path_and_query: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), path_and_query.encode(), hashlib.sha1).digest()
    return quote(base64.b64encode(digest).decode(), safe="")


def test_api_key_signature_authenticates(server, alice):
    public, secret = alice.api_key()
    relative = f"users/{alice.login}/scannedinstances?apiKey={public}"
    response = httpx.get(f"{server.url}/{relative}&signature={signed(relative, secret)}", headers=XML)
    assert response.status_code == 200, response.text
    valid_xml(response, "scannedInstances")


def test_api_key_with_wrong_signature_gets_401(server, alice):
    public, secret = alice.api_key()
    relative = f"users/{alice.login}/scannedinstances?apiKey={public}"
    tampered = f"users/{alice.login}/scans?apiKey={public}"  # signature of another path
    response = httpx.get(f"{server.url}/{relative}&signature={signed(tampered, secret)}", headers=XML)
    assert response.status_code == 401


def test_api_key_of_one_user_cannot_reach_another(server, alice, bob):
    public, secret = bob.api_key()
    relative = f"users/{alice.login}/scannedinstances?apiKey={public}"
    response = httpx.get(f"{server.url}/{relative}&signature={signed(relative, secret)}", headers=XML)
    assert response.status_code == 404


def test_parameters_after_the_signature_are_refused(server, alice):
    """A captured signed URL must not carry parameters of the attacker's choosing past the signature."""
    public, secret = alice.api_key()
    relative = f"users/{alice.login}/scannedinstances?apiKey={public}"
    signed_url = f"{server.url}/{relative}&signature={signed(relative, secret)}"
    assert httpx.get(signed_url, headers=XML).status_code == 200
    extended = httpx.get(signed_url + "&name=other", headers=XML)
    assert extended.status_code == 401
    assert "must end with &amp;signature=" in extended.text


def test_a_value_mentioning_apikey_does_not_switch_to_api_keys(server, alice):
    response = httpx.get(f"{server.url}/users/{alice.login}/scannedinstances?notanapiKey=1",
                         auth=(alice.login, alice.password), headers=XML)
    assert response.status_code == 200, response.text
