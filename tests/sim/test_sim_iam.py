"""The sandbox's IAM side, checked with Huawei's own ``huaweicloudsdkiam`` client (a
stranger to romakit) over loopback: password and agency tokens, temporary keys from a
token and from an agency, the project listing, and the expiry LINK then enforces."""

from __future__ import annotations

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkiam.v3 import IamClient
from huaweicloudsdkiam.v3 import model as m

import romakit as rk

SANDBOX = {"devices": 300, "seed": 21, "mqtt": False}  # the module's sandbox (conftest's sb fixture)


def _sdk(sb) -> IamClient:
    c = sb.credentials
    return (IamClient.new_builder()
            .with_credentials(GlobalCredentials(c.ak, c.sk, c.domain_id))
            .with_endpoints([sb.iam_endpoint])
            .build())


def _password_request(sb, *, password: str | None = None) -> m.KeystoneCreateUserTokenByPasswordRequest:
    c = sb.credentials
    user = m.PwdPasswordUser(domain=m.PwdPasswordUserDomain(name=c.domain), name=c.user,
                             password=password or c.password)
    auth = m.PwdAuth(identity=m.PwdIdentity(methods=["password"], password=m.PwdPassword(user=user)),
                     scope=m.AuthScope(project=m.AuthScopeProject(name=sb.region)))
    return m.KeystoneCreateUserTokenByPasswordRequest(body=m.KeystoneCreateUserTokenByPasswordRequestBody(auth=auth))


def test_official_iam_client_gets_a_password_token_that_link_accepts(sb):
    resp = _sdk(sb).keystone_create_user_token_by_password(_password_request(sb))
    assert resp.x_subject_token and resp.token.project.id == sb.credentials.project_id
    assert resp.token.expires_at.endswith("Z")
    c = sb.credentials
    r = httpx.get(f"{sb.link_endpoint}/v2/{c.project_id}/link/instances/{c.instance_id}/devices",
                  params={"limit": 1}, headers={"X-Auth-Token": resp.x_subject_token})
    assert r.status_code == 200 and r.json()["total"] == 300
    with pytest.raises(ClientRequestException) as e:
        _sdk(sb).keystone_create_user_token_by_password(_password_request(sb, password="Pw-wrong"))
    assert e.value.status_code == 401


def test_official_iam_client_temporary_keys_projects_and_agency(sb):
    sdk = _sdk(sb)
    token = sdk.keystone_create_user_token_by_password(_password_request(sb)).x_subject_token
    body = m.CreateTemporaryAccessKeyByTokenRequestBody(auth=m.TokenAuth(identity=m.TokenAuthIdentity(
        methods=["token"], token=m.IdentityToken(id=token, duration_seconds=900))))
    cred = sdk.create_temporary_access_key_by_token(m.CreateTemporaryAccessKeyByTokenRequest(body=body)).credential
    assert cred.access and cred.secret and cred.securitytoken and cred.expires_at.endswith("Z")

    projects = sdk.keystone_list_projects(m.KeystoneListProjectsRequest(name=sb.region)).projects
    assert [p.id for p in projects] == [sb.credentials.project_id]
    assert sdk.keystone_list_projects(m.KeystoneListProjectsRequest(name="ap-southeast-3")).projects == []

    c = sb.credentials
    role = m.IdentityAssumerole(agency_name=c.agency, domain_name=c.agency_domain, duration_seconds=3600)
    body = m.CreateTemporaryAccessKeyByAgencyRequestBody(auth=m.AgencyAuth(identity=m.AgencyAuthIdentity(
        methods=["assume_role"], assume_role=role)))
    agency_key = sdk.create_temporary_access_key_by_agency(m.CreateTemporaryAccessKeyByAgencyRequest(body=body))
    assert agency_key.credential.access.startswith("TMP")
    role.agency_name = "someone_else"
    with pytest.raises(ClientRequestException) as e:
        sdk.create_temporary_access_key_by_agency(m.CreateTemporaryAccessKeyByAgencyRequest(body=body))
    assert e.value.status_code == 403

    # the temporary key signs LINK requests with its security token, until it expires
    link = rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id,
                         rk.AkSk(cred.access, cred.secret, security_token=cred.securitytoken), progress=False)
    with link:
        assert link.device_page(0, 1)["total"] == 300
        sb.iam.expire_all()
        with pytest.raises(rk.ApiError) as err:
            link.device_page(0, 1)
    assert err.value.status == 401 and err.value.error_code == "APIG.0301" and "expired" in err.value.error_msg
    assert cred.secret not in str(err.value) and cred.securitytoken not in str(err.value)


def test_temporary_key_without_its_security_token_is_refused(sb):
    c = sb.credentials
    tok = rk.Token.from_password(c.domain, c.user, c.password, region=sb.region, iam_endpoint=sb.iam_endpoint)
    tmp = rk.AkSk.from_token(tok, iam_endpoint=sb.iam_endpoint, duration=900)
    cred = tmp._credential()
    with rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(cred.access, cred.secret),
                       progress=False, retry=rk.RetryPolicy(attempts=1)) as link:
        with pytest.raises(rk.ApiError, match="X-Security-Token") as e:
            link.device_page(0, 1)
    assert e.value.auth_refused
    assert "security_token='***'" in repr(tmp) and cred.secret not in repr(tmp)
