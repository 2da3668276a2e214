-- People and places. A user has exactly one role; its profile lives in the table of that
-- role (class-table inheritance). Emails and usernames are unique case-insensitively.

create table departments (
    id uuid primary key,
    name text not null,
    description text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index departments_name_key on departments (lower(name));

create table rooms (
    id uuid primary key,
    department_id uuid not null constraint rooms_department_fkey references departments (id),
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index rooms_name_key on rooms (lower(name));
create index rooms_department_idx on rooms (department_id);

create table users (
    id uuid primary key,
    role text not null constraint users_role_check
        check (role in ('ADMIN', 'DOCTOR', 'NURSE', 'PATIENT')),
    status text not null default 'ACTIVE' constraint users_status_check
        check (status in ('ACTIVE', 'DEACTIVATED')),
    email text not null,
    username text not null,
    first_name text not null,
    last_name text not null,
    phone text,
    gender text constraint users_gender_check
        check (gender in ('FEMALE', 'MALE', 'OTHER', 'UNDISCLOSED')),
    date_of_birth date,
    address text,
    -- Null when Keycloak holds the credentials.
    password_hash text,
    deactivated_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index users_email_key on users (lower(email));
create unique index users_username_key on users (lower(username));
create index users_role_idx on users (role, status);

create table admins (
    user_id uuid primary key constraint admins_user_fkey references users (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table doctors (
    user_id uuid primary key constraint doctors_user_fkey references users (id),
    specialization text not null,
    years_of_experience integer not null constraint doctors_experience_check
        check (years_of_experience between 0 and 80),
    department_id uuid not null constraint doctors_department_fkey references departments (id),
    fee_amount bigint not null constraint doctors_fee_check check (fee_amount >= 0),
    fee_currency text not null constraint doctors_currency_check check (fee_currency ~ '^[A-Z]{3}$'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index doctors_department_idx on doctors (department_id);

create table nurses (
    user_id uuid primary key constraint nurses_user_fkey references users (id),
    department_id uuid not null constraint nurses_department_fkey references departments (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index nurses_department_idx on nurses (department_id);

create table patients (
    user_id uuid primary key constraint patients_user_fkey references users (id),
    blood_type text constraint patients_blood_type_check
        check (blood_type in ('A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-')),
    allergies text[] not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
