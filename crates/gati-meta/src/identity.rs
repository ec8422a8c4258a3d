//! Identity and access records in the `meta` group's state: applying [`IdentityCommand`]s and
//! the queries access decisions read.
//!
//! Keys (all in the group's one state tree, beside nothing else: shards never hold these):
//! `U`+name user · `O`+name organisation · `S`+skeleton the account holding that (confusable)
//! name · `E`+email the user holding that address · `X`+issuer+NUL+subject the user an external
//! identity signs in as · `P`+namespace its policy · `K`+id an API key · `k`+owner+NUL+id the
//! owner's keys · `Z`+id a login session · `G` the token-signing keys · `A`+namespace+NUL+
//! sequence (16 hex digits) an audit entry · `Q` the last audit sequence number · `C`+namespace
//! how many audit entries the namespace holds. Values are JSON.
//!
//! Each namespace keeps its newest [`AUDIT_ENTRIES_KEPT`] audit entries; appending past that
//! drops the oldest, deterministically, so every replica keeps the same ones.

use gati_core::identity::{
    AccountName, ApiKeyId, ApiKeyRecord, AuditEvent, Email, EmailTokenPurpose, EmailTokenRecord, ExternalIdentity,
    Grantee, IdentityCommand, IdentityRejection, NamespacePolicy, OrgRecord, OrgRole, SessionId, SessionRecord,
    SigningKeys, UserChange, UserRecord,
};
use gati_core::{Applied, Namespace, Rejection};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{MetaError, Result};
use crate::keys::key;
use crate::state_machine::{Pending, StateMachine};

const USER: u8 = b'U';
const ORG: u8 = b'O';
const SKELETON: u8 = b'S';
const EMAIL: u8 = b'E';
const EXTERNAL: u8 = b'X';
const POLICY: u8 = b'P';
const API_KEY: u8 = b'K';
const KEYS_OF: u8 = b'k';
const SESSION: u8 = b'Z';
const SIGNING_KEYS: &[u8] = b"G";
const EMAIL_TOKEN: u8 = b'V';
const AUDIT: u8 = b'A';
const AUDIT_SEQ: &[u8] = b"Q";
const AUDIT_COUNT: u8 = b'C';

/// Audit entries each namespace keeps (a handful in unit tests, so retention is exercised).
pub const AUDIT_ENTRIES_KEPT: u64 = if cfg!(test) { 5 } else { 100_000 };

fn audit_prefix(namespace: &Namespace) -> Vec<u8> {
    let mut k = key(AUDIT, &[namespace.as_str()]);
    k.push(0);
    k
}

fn external_key(identity: &ExternalIdentity) -> Vec<u8> {
    key(EXTERNAL, &[&identity.issuer, &identity.subject])
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| MetaError::Codec(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt(e.to_string()))
}

fn refused(rejection: IdentityRejection) -> Result<Applied> {
    Ok(Applied::Rejected(Rejection::Identity(rejection)))
}

impl Pending<'_> {
    fn read<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.get(key)?.map(|v| decode(&v)).transpose()
    }

    fn write<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<()> {
        let bytes = encode(value)?;
        self.put(key, bytes);
        Ok(())
    }

    fn user(&self, name: &AccountName) -> Result<Option<UserRecord>> {
        self.read(&key(USER, &[name.as_str()]))
    }

    fn org(&self, name: &AccountName) -> Result<Option<OrgRecord>> {
        self.read(&key(ORG, &[name.as_str()]))
    }

    /// The account already holding `name` or a name confusable with it.
    fn name_holder(&self, name: &AccountName) -> Result<Option<AccountName>> {
        self.get(&key(SKELETON, &[&name.skeleton()]))?.map(|v| decode_name(&v)).transpose()
    }

    /// Decides an identity command and records its writes; a rejection records nothing.
    pub(crate) fn decide_identity(&mut self, command: &IdentityCommand) -> Result<Applied> {
        match command {
            IdentityCommand::CreateUser { user } => self.create_user(user),
            IdentityCommand::UpdateUser { name, change } => self.update_user(name, change),
            IdentityCommand::CreateOrg { name, owner, at } => {
                if let Some(holder) = self.name_holder(name)? {
                    return refused(IdentityRejection::NameTaken { holder });
                }
                if self.user(owner)?.is_none() {
                    return refused(IdentityRejection::UserUnknown { name: owner.clone() });
                }
                let org = OrgRecord {
                    name: name.clone(),
                    members: [(owner.clone(), OrgRole::Owner)].into(),
                    teams: Default::default(),
                    verified_publisher: false,
                    created_at: *at,
                };
                self.put(key(SKELETON, &[&name.skeleton()]), name.as_str());
                self.write(key(ORG, &[name.as_str()]), &org)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::SetOrgMember { org, user, role } => self.set_org_member(org, user, *role),
            IdentityCommand::SetTeam { org: org_name, team, members } => {
                let Some(mut org) = self.org(org_name)? else {
                    return refused(IdentityRejection::OrgUnknown { name: org_name.clone() });
                };
                match members {
                    Some(members) => {
                        if let Some(outsider) = members.iter().find(|m| !org.members.contains_key(*m)) {
                            return refused(IdentityRejection::NotAMember { user: outsider.clone() });
                        }
                        org.teams.insert(team.clone(), members.clone());
                    }
                    None if org.teams.remove(team).is_none() => return refused(IdentityRejection::TeamUnknown),
                    None => {}
                }
                self.write(key(ORG, &[org_name.as_str()]), &org)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::SetNamespacePolicy { namespace, visibility, settings } => {
                let mut policy = self.policy(namespace)?;
                policy.visibility = *visibility;
                policy.settings = settings.clone();
                self.write(key(POLICY, &[namespace.as_str()]), &policy)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::SetNamespaceGrant { namespace, grantee, role } => {
                match grantee {
                    Grantee::User { name } if self.user(name)?.is_none() => {
                        return refused(IdentityRejection::UserUnknown { name: name.clone() });
                    }
                    Grantee::Team { org, team } => match self.org(org)? {
                        None => return refused(IdentityRejection::OrgUnknown { name: org.clone() }),
                        Some(record) if !record.teams.contains_key(team) => {
                            return refused(IdentityRejection::TeamUnknown);
                        }
                        Some(_) => {}
                    },
                    Grantee::User { .. } => {}
                }
                let mut policy = self.policy(namespace)?;
                match role {
                    Some(role) => {
                        policy.grants.insert(grantee.key(), (grantee.clone(), *role));
                    }
                    None => {
                        policy.grants.remove(&grantee.key());
                    }
                }
                self.write(key(POLICY, &[namespace.as_str()]), &policy)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::CreateApiKey { key: record } => {
                let id_key = key(API_KEY, &[record.id.as_str()]);
                if self.contains(&id_key)? {
                    return refused(IdentityRejection::IdTaken);
                }
                if self.user(&record.owner)?.is_none() {
                    return refused(IdentityRejection::UserUnknown { name: record.owner.clone() });
                }
                self.write(id_key, record.as_ref())?;
                self.put(key(KEYS_OF, &[record.owner.as_str(), record.id.as_str()]), []);
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::RevokeApiKey { id, at } => {
                let id_key = key(API_KEY, &[id.as_str()]);
                let Some(mut record) = self.read::<ApiKeyRecord>(&id_key)? else {
                    return refused(IdentityRejection::ApiKeyUnknown);
                };
                record.revoked_at.get_or_insert(*at);
                self.write(id_key, &record)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::TouchApiKeys { used } => {
                for (id, at) in used {
                    let id_key = key(API_KEY, &[id.as_str()]);
                    if let Some(mut record) = self.read::<ApiKeyRecord>(&id_key)?
                        && record.last_used_at.is_none_or(|last| last < *at)
                    {
                        record.last_used_at = Some(*at);
                        self.write(id_key, &record)?;
                    }
                }
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::CreateSession { session } => {
                let id_key = key(SESSION, &[session.id.as_str()]);
                if self.contains(&id_key)? {
                    return refused(IdentityRejection::IdTaken);
                }
                if self.user(&session.user)?.is_none() {
                    return refused(IdentityRejection::UserUnknown { name: session.user.clone() });
                }
                self.write(id_key, session)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::RevokeSession { id, at } => {
                let id_key = key(SESSION, &[id.as_str()]);
                let Some(mut session) = self.read::<SessionRecord>(&id_key)? else {
                    return refused(IdentityRejection::SessionUnknown);
                };
                session.revoked_at.get_or_insert(*at);
                self.write(id_key, &session)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::AppendAudit { entries } => {
                let mut seq: u64 = self.read(AUDIT_SEQ)?.unwrap_or(0);
                let mut counts: std::collections::BTreeMap<Namespace, u64> = std::collections::BTreeMap::new();
                for (namespace, event) in entries {
                    seq += 1;
                    let mut entry_key = audit_prefix(namespace);
                    entry_key.extend_from_slice(format!("{seq:016x}").as_bytes());
                    self.write(entry_key, event)?;
                    let count = match counts.get(namespace) {
                        Some(count) => *count,
                        None => self.read(&key(AUDIT_COUNT, &[namespace.as_str()]))?.unwrap_or(0),
                    };
                    let count = if count >= AUDIT_ENTRIES_KEPT {
                        if let Some(oldest) = self.first_under(&audit_prefix(namespace))? {
                            self.delete(oldest);
                        }
                        count
                    } else {
                        count + 1
                    };
                    counts.insert(namespace.clone(), count);
                }
                for (namespace, count) in counts {
                    self.write(key(AUDIT_COUNT, &[namespace.as_str()]), &count)?;
                }
                self.write(AUDIT_SEQ.to_vec(), &seq)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::CreateEmailToken { token } => {
                let id_key = key(EMAIL_TOKEN, &[token.id.as_str()]);
                if self.contains(&id_key)? {
                    return refused(IdentityRejection::IdTaken);
                }
                if self.user(&token.user)?.is_none() {
                    return refused(IdentityRejection::UserUnknown { name: token.user.clone() });
                }
                self.write(id_key, token.as_ref())?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::RedeemEmailToken { id, purpose, password, at } => {
                let id_key = key(EMAIL_TOKEN, &[id.as_str()]);
                let Some(mut token) = self.read::<EmailTokenRecord>(&id_key)? else {
                    return refused(IdentityRejection::TokenUnusable);
                };
                let fits = token.purpose == *purpose
                    && token.used_at.is_none()
                    && token.expires_at > *at
                    && password.is_some() == (*purpose == EmailTokenPurpose::ResetPassword);
                if !fits {
                    return refused(IdentityRejection::TokenUnusable);
                }
                let change = match password {
                    Some(hash) => UserChange::SetPassword { hash: hash.clone(), at: *at },
                    None => UserChange::VerifyEmail,
                };
                let outcome = self.update_user(&token.user, &change)?;
                if outcome != Applied::IdentityChanged {
                    return Ok(outcome);
                }
                if password.is_some() {
                    self.recover_account(&token.user, *at)?;
                }
                token.used_at = Some(*at);
                self.write(id_key, &token)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::SetOrgVerified { org: name, verified } => {
                let Some(mut org) = self.org(name)? else {
                    return refused(IdentityRejection::OrgUnknown { name: name.clone() });
                };
                org.verified_publisher = *verified;
                self.write(key(ORG, &[name.as_str()]), &org)?;
                Ok(Applied::IdentityChanged)
            }
            IdentityCommand::RotateSigningKey { key: new_key, retire_previous_after, now } => {
                let mut keys: SigningKeys = self.read(SIGNING_KEYS)?.unwrap_or_default();
                if keys.keys.iter().any(|k| k.kid == new_key.kid) {
                    return refused(IdentityRejection::IdTaken);
                }
                // Every older key retires by then too: an emergency rotation (retiring at once)
                // must not leave an earlier key verifying for the rest of its grace period.
                for older in &mut keys.keys {
                    let retire = older.retire_after.map_or(*retire_previous_after, |r| r.min(*retire_previous_after));
                    older.retire_after = Some(retire);
                }
                keys.keys.retain(|k| k.retire_after.is_none_or(|r| r >= *now));
                keys.keys.push(new_key.as_ref().clone());
                keys.active = Some(new_key.kid.clone());
                self.write(SIGNING_KEYS.to_vec(), &keys)?;
                Ok(Applied::IdentityChanged)
            }
        }
    }

    fn policy(&self, namespace: &Namespace) -> Result<NamespacePolicy> {
        Ok(self.read(&key(POLICY, &[namespace.as_str()]))?.unwrap_or_default())
    }

    fn create_user(&mut self, user: &UserRecord) -> Result<Applied> {
        if let Some(holder) = self.name_holder(&user.name)? {
            return refused(IdentityRejection::NameTaken { holder });
        }
        let email_key = key(EMAIL, &[&user.email.as_str().to_lowercase()]);
        if self.contains(&email_key)? {
            return refused(IdentityRejection::EmailTaken);
        }
        for identity in &user.external {
            if self.contains(&external_key(identity))? {
                return refused(IdentityRejection::IdTaken);
            }
        }
        for identity in &user.external {
            self.put(external_key(identity), user.name.as_str());
        }
        self.put(email_key, user.name.as_str());
        self.put(key(SKELETON, &[&user.name.skeleton()]), user.name.as_str());
        self.write(key(USER, &[user.name.as_str()]), user)?;
        Ok(Applied::IdentityChanged)
    }

    fn update_user(&mut self, name: &AccountName, change: &UserChange) -> Result<Applied> {
        let Some(mut user) = self.user(name)? else {
            return refused(IdentityRejection::UserUnknown { name: name.clone() });
        };
        match change {
            UserChange::SetPassword { hash, at } => {
                user.password = Some(hash.clone());
                user.tokens_valid_after = user.tokens_valid_after.max(*at);
            }
            UserChange::VerifyEmail => user.email_verified = true,
            UserChange::SetRegistryAdmin { admin } => user.registry_admin = *admin,
            UserChange::SetVerifiedPublisher { verified } => user.verified_publisher = *verified,
            UserChange::SetDisabled { disabled, at } => {
                user.disabled = *disabled;
                if *disabled {
                    user.tokens_valid_after = user.tokens_valid_after.max(*at);
                }
            }
            UserChange::LinkExternal { identity } => {
                let external = external_key(identity);
                match self.get(&external)? {
                    Some(holder) if holder != name.as_str().as_bytes() => return refused(IdentityRejection::IdTaken),
                    _ => {}
                }
                self.put(external, name.as_str());
                user.external.insert(identity.clone());
            }
            UserChange::RevokeTokens { at } => user.tokens_valid_after = user.tokens_valid_after.max(*at),
        }
        self.write(key(USER, &[name.as_str()]), &user)?;
        Ok(Applied::IdentityChanged)
    }

    /// After a password reset (the mailbox owner taking the account back): every API key is
    /// revoked, the address counts as verified, and external sign-ins linked while it was not
    /// verified are unlinked, so whoever held the account before keeps no way in.
    fn recover_account(&mut self, name: &AccountName, at: u64) -> Result<()> {
        let Some(mut user) = self.user(name)? else { return Ok(()) };
        let mut keys_of = key(KEYS_OF, &[name.as_str()]);
        keys_of.push(0);
        for (k, _) in self.scan_prefix(&keys_of)? {
            let id = std::str::from_utf8(&k[keys_of.len()..]).map_err(|e| MetaError::Corrupt(e.to_string()))?;
            let id_key = key(API_KEY, &[id]);
            if let Some(mut record) = self.read::<ApiKeyRecord>(&id_key)?
                && record.revoked_at.is_none()
            {
                record.revoked_at = Some(at);
                self.write(id_key, &record)?;
            }
        }
        if !user.email_verified {
            for identity in std::mem::take(&mut user.external) {
                self.delete(external_key(&identity));
            }
            user.email_verified = true;
            self.write(key(USER, &[name.as_str()]), &user)?;
        }
        Ok(())
    }

    fn set_org_member(&mut self, org_name: &AccountName, user: &AccountName, role: Option<OrgRole>) -> Result<Applied> {
        let Some(mut org) = self.org(org_name)? else {
            return refused(IdentityRejection::OrgUnknown { name: org_name.clone() });
        };
        if self.user(user)?.is_none() {
            return refused(IdentityRejection::UserUnknown { name: user.clone() });
        }
        let was_owner = org.members.get(user) == Some(&OrgRole::Owner);
        let owners = org.members.values().filter(|r| **r == OrgRole::Owner).count();
        if was_owner && owners == 1 && role != Some(OrgRole::Owner) {
            return refused(IdentityRejection::LastOwner);
        }
        match role {
            Some(role) => {
                org.members.insert(user.clone(), role);
            }
            None => {
                if org.members.remove(user).is_none() {
                    return refused(IdentityRejection::NotAMember { user: user.clone() });
                }
                for members in org.teams.values_mut() {
                    members.remove(user);
                }
            }
        }
        self.write(key(ORG, &[org_name.as_str()]), &org)?;
        Ok(Applied::IdentityChanged)
    }
}

fn decode_name(bytes: &[u8]) -> Result<AccountName> {
    std::str::from_utf8(bytes)
        .map_err(|e| MetaError::Corrupt(e.to_string()))?
        .parse()
        .map_err(|e: gati_core::CoreError| MetaError::Corrupt(e.to_string()))
}

/// Identity queries. Each reads the local replica as applied; callers that need the newest
/// state make the read linearizable first.
impl StateMachine {
    fn read<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.tree().get(key)?.map(|v| decode(&v)).transpose()
    }

    /// Returns a user account.
    pub fn user(&self, name: &AccountName) -> Result<Option<UserRecord>> {
        self.read(&key(USER, &[name.as_str()]))
    }

    /// Returns the user holding an email address.
    pub fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>> {
        let Some(name) = self.tree().get(key(EMAIL, &[&email.as_str().to_lowercase()]))? else { return Ok(None) };
        self.user(&decode_name(&name)?)
    }

    /// Returns the user an external identity signs in as.
    pub fn user_by_external(&self, identity: &ExternalIdentity) -> Result<Option<UserRecord>> {
        let Some(name) = self.tree().get(external_key(identity))? else { return Ok(None) };
        self.user(&decode_name(&name)?)
    }

    /// Returns an organisation.
    pub fn org(&self, name: &AccountName) -> Result<Option<OrgRecord>> {
        self.read(&key(ORG, &[name.as_str()]))
    }

    /// Returns the account holding `name` or a name confusable with it.
    pub fn name_holder(&self, name: &AccountName) -> Result<Option<AccountName>> {
        self.tree().get(key(SKELETON, &[&name.skeleton()]))?.map(|v| decode_name(&v)).transpose()
    }

    /// Returns a namespace's policy (the default, public and without grants, when none was set).
    pub fn namespace_policy(&self, namespace: &Namespace) -> Result<NamespacePolicy> {
        Ok(self.read(&key(POLICY, &[namespace.as_str()]))?.unwrap_or_default())
    }

    /// Returns an API key.
    pub fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>> {
        self.read(&key(API_KEY, &[id.as_str()]))
    }

    /// Returns every API key of a user, revoked ones included, in id order.
    pub fn api_keys_of(&self, owner: &AccountName) -> Result<Vec<ApiKeyRecord>> {
        let mut prefix = key(KEYS_OF, &[owner.as_str()]);
        prefix.push(0);
        let mut keys = Vec::new();
        for entry in self.tree().scan_prefix(&prefix) {
            let (k, _) = entry?;
            let id: ApiKeyId = std::str::from_utf8(&k[prefix.len()..])
                .map_err(|e| MetaError::Corrupt(e.to_string()))?
                .parse()
                .map_err(|e: gati_core::CoreError| MetaError::Corrupt(e.to_string()))?;
            keys.extend(self.api_key(&id)?);
        }
        Ok(keys)
    }

    /// Returns a login session.
    pub fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        self.read(&key(SESSION, &[id.as_str()]))
    }

    /// Returns the token-signing keys.
    pub fn signing_keys(&self) -> Result<SigningKeys> {
        Ok(self.read(SIGNING_KEYS)?.unwrap_or_default())
    }

    /// Returns an emailed one-time token.
    pub fn email_token(&self, id: &SessionId) -> Result<Option<EmailTokenRecord>> {
        self.read(&key(EMAIL_TOKEN, &[id.as_str()]))
    }

    /// Returns up to `limit` audit entries of a namespace with their sequence numbers, oldest
    /// first, after sequence number `after`, and whether more follow.
    pub fn audit(&self, namespace: &Namespace, after: u64, limit: usize) -> Result<(Vec<(u64, AuditEvent)>, bool)> {
        let prefix = audit_prefix(namespace);
        let mut start = prefix.clone();
        start.extend_from_slice(format!("{:016x}", after.saturating_add(1)).as_bytes());
        let mut end = prefix.clone();
        *end.last_mut().expect("the prefix ends with a separator") += 1;
        let mut out = Vec::new();
        for entry in self.tree().range(start..end) {
            let (k, v) = entry?;
            if out.len() == limit {
                return Ok((out, true));
            }
            let seq = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .ok_or_else(|| MetaError::Corrupt("audit key".into()))?;
            out.push((seq, decode(&v)?));
        }
        Ok((out, false))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use gati_core::identity::{
        ApiKeyRecord, Grantee, IdentityCommand as Id, IdentityRejection as Why, KeyPermission, OrgRole, Role,
        SigningKeyRecord, TeamName, UserChange, UserRecord, Visibility,
    };
    use gati_core::{Applied, Command, GroupId, Rejection, ShardId};

    use crate::{MetaStore, StateMachine};

    fn open(group: GroupId) -> (tempfile::TempDir, StateMachine) {
        let dir = tempfile::tempdir().unwrap();
        let sm = MetaStore::open(dir.path()).unwrap().state_machine(group).unwrap();
        (dir, sm)
    }

    fn name(s: &str) -> gati_core::identity::AccountName {
        s.parse().unwrap()
    }

    fn user(n: &str, email: &str) -> Box<UserRecord> {
        Box::new(UserRecord {
            name: name(n),
            email: email.parse().unwrap(),
            email_verified: false,
            password: Some("$argon2id$stub".into()),
            registry_admin: false,
            verified_publisher: false,
            disabled: false,
            external: BTreeSet::new(),
            tokens_valid_after: 0,
            created_at: 1,
        })
    }

    fn apply(sm: &StateMachine, command: Id) -> Applied {
        sm.apply(b"pos", &[Command::Identity(command)]).unwrap().pop().unwrap()
    }

    fn refused(why: Why) -> Applied {
        Applied::Rejected(Rejection::Identity(why))
    }

    #[test]
    fn only_the_meta_group_applies_identity_writes() {
        let (_d, shard) = open(GroupId::Shard(ShardId(0)));
        assert_eq!(
            apply(&shard, Id::CreateUser { user: user("alice", "a@x.io") }),
            Applied::Rejected(Rejection::WrongGroup)
        );
        assert_eq!(shard.user(&name("alice")).unwrap(), None);
        let (_d, meta) = open(GroupId::Meta);
        let repo_write = Command::DeleteTag { repo: "a/b".parse().unwrap(), tag: "v1".parse().unwrap() };
        assert_eq!(meta.apply(b"pos", &[repo_write]).unwrap(), vec![Applied::Rejected(Rejection::WrongGroup)]);
    }

    #[test]
    fn names_and_emails_are_unique_and_not_confusable() {
        let (_d, sm) = open(GroupId::Meta);
        assert_eq!(apply(&sm, Id::CreateUser { user: user("paypal", "p@x.io") }), Applied::IdentityChanged);
        assert_eq!(
            apply(&sm, Id::CreateUser { user: user("paypal", "q@x.io") }),
            refused(Why::NameTaken { holder: name("paypal") })
        );
        assert_eq!(
            apply(&sm, Id::CreateUser { user: user("paypa1", "q@x.io") }),
            refused(Why::NameTaken { holder: name("paypal") })
        );
        assert_eq!(
            apply(&sm, Id::CreateOrg { name: name("pay-pal"), owner: name("paypal"), at: 2 }),
            refused(Why::NameTaken { holder: name("paypal") }),
            "organisations share the name space"
        );
        assert_eq!(apply(&sm, Id::CreateUser { user: user("bob", "P@X.io") }), refused(Why::EmailTaken));
        assert_eq!(sm.user_by_email(&"p@X.IO".parse().unwrap()).unwrap().unwrap().name, name("paypal"));
        assert_eq!(sm.name_holder(&name("paypa1")).unwrap(), Some(name("paypal")));
    }

    #[test]
    fn password_changes_and_disabling_end_earlier_tokens() {
        let (_d, sm) = open(GroupId::Meta);
        apply(&sm, Id::CreateUser { user: user("alice", "a@x.io") });
        let change = |change| Id::UpdateUser { name: name("alice"), change };
        apply(&sm, change(UserChange::SetPassword { hash: "$argon2id$new".into(), at: 50 }));
        let alice = sm.user(&name("alice")).unwrap().unwrap();
        assert_eq!((alice.password.as_deref(), alice.tokens_valid_after), (Some("$argon2id$new"), 50));
        apply(&sm, change(UserChange::SetDisabled { disabled: true, at: 40 }));
        let alice = sm.user(&name("alice")).unwrap().unwrap();
        assert!(alice.disabled);
        assert_eq!(alice.tokens_valid_after, 50, "the cut-off never moves back");
        assert_eq!(
            apply(&sm, Id::UpdateUser { name: name("nobody"), change: UserChange::VerifyEmail }),
            refused(Why::UserUnknown { name: name("nobody") })
        );
    }

    #[test]
    fn organisations_keep_an_owner_and_teams_hold_members_only() {
        let (_d, sm) = open(GroupId::Meta);
        for (n, e) in [("alice", "a@x.io"), ("bob", "b@x.io"), ("carol", "c@x.io")] {
            apply(&sm, Id::CreateUser { user: user(n, e) });
        }
        assert_eq!(
            apply(&sm, Id::CreateOrg { name: name("acme"), owner: name("alice"), at: 1 }),
            Applied::IdentityChanged
        );
        let member = |user: &str, role| Id::SetOrgMember { org: name("acme"), user: name(user), role };
        assert_eq!(apply(&sm, member("alice", Some(OrgRole::Member))), refused(Why::LastOwner));
        assert_eq!(apply(&sm, member("alice", None)), refused(Why::LastOwner));
        assert_eq!(apply(&sm, member("bob", Some(OrgRole::Member))), Applied::IdentityChanged);
        let team: TeamName = "devs".parse().unwrap();
        let set_team = |members: &[&str]| Id::SetTeam {
            org: name("acme"),
            team: team.clone(),
            members: Some(members.iter().map(|m| name(m)).collect()),
        };
        assert_eq!(apply(&sm, set_team(&["bob", "carol"])), refused(Why::NotAMember { user: name("carol") }));
        assert_eq!(apply(&sm, set_team(&["bob"])), Applied::IdentityChanged);
        assert_eq!(apply(&sm, member("bob", Some(OrgRole::Owner))), Applied::IdentityChanged);
        assert_eq!(apply(&sm, member("alice", None)), Applied::IdentityChanged, "another owner remains");
        assert_eq!(apply(&sm, member("bob", None)), refused(Why::LastOwner));
        let org = sm.org(&name("acme")).unwrap().unwrap();
        assert_eq!(org.members.keys().collect::<Vec<_>>(), [&name("bob")]);
        assert!(org.teams[&team].contains(&name("bob")));
        let grant = |grantee, role| Id::SetNamespaceGrant { namespace: name("acme").org_namespace(), grantee, role };
        let devs = Grantee::Team { org: name("acme"), team: team.clone() };
        assert_eq!(apply(&sm, grant(devs.clone(), Some(Role::Write))), Applied::IdentityChanged);
        let ghosts = Grantee::Team { org: name("acme"), team: "ghosts".parse().unwrap() };
        assert_eq!(apply(&sm, grant(ghosts, Some(Role::Read))), refused(Why::TeamUnknown));
        let policy = sm.namespace_policy(&name("acme").org_namespace()).unwrap();
        assert_eq!(policy.grants[&devs.key()], (devs.clone(), Role::Write));
        assert_eq!(policy.visibility, Visibility::Public);
        apply(&sm, grant(devs.clone(), None));
        assert!(sm.namespace_policy(&name("acme").org_namespace()).unwrap().grants.is_empty());
    }

    #[test]
    fn api_keys_and_sessions_are_revoked_once() {
        let (_d, sm) = open(GroupId::Meta);
        apply(&sm, Id::CreateUser { user: user("alice", "a@x.io") });
        let id: gati_core::identity::ApiKeyId = "abcdefghabcdefgh".parse().unwrap();
        let key = ApiKeyRecord {
            id: id.clone(),
            owner: name("alice"),
            label: "ci".into(),
            secret_sha256: "00".repeat(32),
            permissions: [KeyPermission::Pull].into(),
            repositories: vec![],
            expires_at: None,
            created_at: 1,
            revoked_at: None,
            last_used_at: None,
        };
        assert_eq!(apply(&sm, Id::CreateApiKey { key: Box::new(key.clone()) }), Applied::IdentityChanged);
        assert_eq!(apply(&sm, Id::CreateApiKey { key: Box::new(key.clone()) }), refused(Why::IdTaken));
        assert_eq!(apply(&sm, Id::RevokeApiKey { id: id.clone(), at: 7 }), Applied::IdentityChanged);
        assert_eq!(apply(&sm, Id::RevokeApiKey { id: id.clone(), at: 9 }), Applied::IdentityChanged);
        assert_eq!(sm.api_key(&id).unwrap().unwrap().revoked_at, Some(7), "the first revocation time stays");
        assert_eq!(sm.api_keys_of(&name("alice")).unwrap().len(), 1);
        let unknown: gati_core::identity::ApiKeyId = "zzzzzzzzzzzzzzzz".parse().unwrap();
        apply(&sm, Id::TouchApiKeys { used: vec![(id.clone(), 50), (unknown, 60)] });
        apply(&sm, Id::TouchApiKeys { used: vec![(id.clone(), 40)] });
        assert_eq!(sm.api_key(&id).unwrap().unwrap().last_used_at, Some(50), "the last use never moves back");
        assert!(sm.api_keys_of(&name("bob")).unwrap().is_empty());
        let sid: gati_core::identity::SessionId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        assert_eq!(apply(&sm, Id::RevokeSession { id: sid.clone(), at: 1 }), refused(Why::SessionUnknown));
    }

    #[test]
    fn rotating_signing_keys_retires_the_previous_and_drops_expired_ones() {
        let (_d, sm) = open(GroupId::Meta);
        let key = |kid: &str| {
            Box::new(SigningKeyRecord {
                kid: kid.parse().unwrap(),
                pkcs8: "p".into(),
                public: "q".into(),
                created_at: 0,
                retire_after: None,
            })
        };
        apply(&sm, Id::RotateSigningKey { key: key("000000000000000a"), retire_previous_after: 100, now: 0 });
        apply(&sm, Id::RotateSigningKey { key: key("000000000000000b"), retire_previous_after: 200, now: 50 });
        let keys = sm.signing_keys().unwrap();
        assert_eq!(keys.active.as_ref().map(|k| k.as_str()), Some("000000000000000b"));
        assert_eq!(
            keys.keys.iter().map(|k| (k.kid.as_str(), k.retire_after)).collect::<Vec<_>>(),
            [("000000000000000a", Some(200)), ("000000000000000b", None)]
        );
        assert_eq!(
            apply(&sm, Id::RotateSigningKey { key: key("000000000000000b"), retire_previous_after: 1, now: 60 }),
            refused(Why::IdTaken)
        );
        apply(&sm, Id::RotateSigningKey { key: key("000000000000000c"), retire_previous_after: 300, now: 250 });
        let kids: Vec<_> = sm.signing_keys().unwrap().keys.into_iter().map(|k| k.kid.to_string()).collect();
        assert_eq!(kids, ["000000000000000b", "000000000000000c"], "a retired key is dropped");
        // An emergency rotation retires every older key at once, not only the active one.
        apply(&sm, Id::RotateSigningKey { key: key("000000000000000d"), retire_previous_after: 260, now: 260 });
        let retire: Vec<_> = sm.signing_keys().unwrap().keys.into_iter().map(|k| k.retire_after).collect();
        assert_eq!(retire, [Some(260), Some(260), None]);
    }

    fn event(n: u64) -> gati_core::identity::AuditEvent {
        gati_core::identity::AuditEvent {
            at_ms: n,
            actor: Some(name("alice")),
            credential: "password".into(),
            action: "push".into(),
            target: "users/alice/app".into(),
            client: Some("127.0.0.1".into()),
            outcome: gati_core::identity::AuditOutcome::Allowed,
            status: 201,
            node: 1,
        }
    }

    #[test]
    fn audit_logs_page_per_namespace_and_keep_the_newest() {
        let (_d, sm) = open(GroupId::Meta);
        let alice = name("alice").user_namespace();
        let acme = name("acme").org_namespace();
        let entries = (1..=4).flat_map(|n| [(alice.clone(), event(n)), (acme.clone(), event(100 + n))]).collect();
        assert_eq!(apply(&sm, Id::AppendAudit { entries }), Applied::IdentityChanged);
        let (page, more) = sm.audit(&alice, 0, 3).unwrap();
        assert!(more);
        assert_eq!(page.iter().map(|(_, e)| e.at_ms).collect::<Vec<_>>(), [1, 2, 3]);
        let (rest, more) = sm.audit(&alice, page[2].0, 10).unwrap();
        assert!(!more);
        assert_eq!(rest.iter().map(|(_, e)| e.at_ms).collect::<Vec<_>>(), [4]);
        // Past the cap, the oldest go; within one write and across writes alike.
        let entries = (5..=8).map(|n| (alice.clone(), event(n))).collect();
        apply(&sm, Id::AppendAudit { entries });
        let (kept, _) = sm.audit(&alice, 0, 100).unwrap();
        assert_eq!(kept.iter().map(|(_, e)| e.at_ms).collect::<Vec<_>>(), [4, 5, 6, 7, 8]);
        let (other, _) = sm.audit(&acme, 0, 100).unwrap();
        assert_eq!(other.len(), 4, "another namespace's log is untouched");
    }

    #[test]
    fn emailed_tokens_work_once_before_they_expire_and_for_their_purpose_only() {
        use gati_core::identity::{EmailTokenPurpose as P, EmailTokenRecord};
        let (_d, sm) = open(GroupId::Meta);
        apply(&sm, Id::CreateUser { user: user("alice", "a@x.io") });
        let token = |id: &str, purpose| EmailTokenRecord {
            id: id.parse().unwrap(),
            user: name("alice"),
            purpose,
            secret_sha256: "00".repeat(32),
            expires_at: 100,
            used_at: None,
        };
        let verify = token("00000000000000000000000000000001", P::VerifyEmail);
        let reset = token("00000000000000000000000000000002", P::ResetPassword);
        for t in [&verify, &reset] {
            assert_eq!(apply(&sm, Id::CreateEmailToken { token: Box::new(t.clone()) }), Applied::IdentityChanged);
        }
        let redeem = |t: &EmailTokenRecord, purpose, password: Option<&str>, at| Id::RedeemEmailToken {
            id: t.id.clone(),
            purpose,
            password: password.map(str::to_owned),
            at,
        };
        assert_eq!(apply(&sm, redeem(&verify, P::ResetPassword, Some("$new"), 10)), refused(Why::TokenUnusable));
        assert_eq!(apply(&sm, redeem(&verify, P::VerifyEmail, None, 100)), refused(Why::TokenUnusable), "expired");
        assert_eq!(apply(&sm, redeem(&verify, P::VerifyEmail, None, 10)), Applied::IdentityChanged);
        assert!(sm.user(&name("alice")).unwrap().unwrap().email_verified);
        assert_eq!(apply(&sm, redeem(&verify, P::VerifyEmail, None, 11)), refused(Why::TokenUnusable), "used");
        let key = ApiKeyRecord {
            id: "abcdefghabcdefgh".parse().unwrap(),
            owner: name("alice"),
            label: "ci".into(),
            secret_sha256: "00".repeat(32),
            permissions: [KeyPermission::Push].into(),
            repositories: vec![],
            expires_at: None,
            created_at: 1,
            revoked_at: None,
            last_used_at: None,
        };
        apply(&sm, Id::CreateApiKey { key: Box::new(key.clone()) });
        assert_eq!(apply(&sm, redeem(&reset, P::ResetPassword, Some("$new"), 20)), Applied::IdentityChanged);
        let alice = sm.user(&name("alice")).unwrap().unwrap();
        assert_eq!((alice.password.as_deref(), alice.tokens_valid_after), (Some("$new"), 20));
        assert_eq!(sm.api_key(&key.id).unwrap().unwrap().revoked_at, Some(20), "a reset revokes every API key");
        assert_eq!(apply(&sm, redeem(&reset, P::ResetPassword, Some("$other"), 21)), refused(Why::TokenUnusable));
    }

    #[test]
    fn identity_state_travels_in_snapshots() {
        let (_d, sm) = open(GroupId::Meta);
        apply(&sm, Id::CreateUser { user: user("alice", "a@x.io") });
        let snapshot = sm.export_snapshot().unwrap();
        let (_d2, other) = open(GroupId::Meta);
        other.import_snapshot(&snapshot).unwrap();
        assert_eq!(other.user(&name("alice")).unwrap(), sm.user(&name("alice")).unwrap());
        assert_eq!(other.name_holder(&name("a1ice")).unwrap(), Some(name("alice")));
    }
}
