// The web app in a real browser: Debian's Chromium, headless, driven by Playwright.
//
// Run by services/web/tests/api/browser.rs against a platform it started (every service,
// the web app, an SMTP sink). It walks the original system's whole flow through the pages
// as people would: a patient registers, books, pays with a test card (a declined one
// first); the admin approves with a room and a nurse; the doctor records an allergy, is
// warned when prescribing against it and overrides with a reason; the nurse records vitals;
// the patient reads the prescription and finds its email in the notification list. Along
// the way it checks role isolation, CSRF refusal, the session cookie's flags, and on every
// page: a title, labelled inputs, a skip link reached first by keyboard, no sideways
// scrolling at a phone's width, and a load under one second. Screenshots go to ARTIFACTS.
//
// Any failed check throws; the process exits non-zero with the reason.

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const WEB = env('WEB_URL');
const ARTIFACTS = env('ARTIFACTS');
const STAFF_PASSWORD = env('STAFF_PASSWORD');
mkdirSync(ARTIFACTS, { recursive: true });

const timings = [];
const checked = new Set();

function assert(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Goes to `path` and checks the page basics. */
async function visit(page, path, { status = 200 } = {}) {
  const response = await page.goto(WEB + path);
  assert(response.status() === status, `${path} answered ${response.status()}, expected ${status}`);
  await basics(page, path);
  return response;
}

/** Title, language, labelled inputs, load time; phone width and keyboard once per page. */
async function basics(page, label) {
  const facts = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const unlabelled = [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.type !== 'hidden')
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
      .map((el) => el.name || el.id || el.outerHTML.slice(0, 60));
    return {
      title: document.title,
      lang: document.documentElement.lang,
      h1: document.querySelectorAll('h1').length,
      unlabelled,
      loadMs: nav ? nav.loadEventEnd - nav.startTime : null,
      path: location.pathname,
    };
  });
  assert(facts.title.endsWith('· Polyclinic') && facts.title.length > 13, `${label}: title "${facts.title}"`);
  assert(facts.lang === 'en', `${label}: <html lang> is "${facts.lang}"`);
  assert(facts.h1 === 1, `${label}: ${facts.h1} <h1> elements`);
  assert(facts.unlabelled.length === 0, `${label}: inputs without a label: ${facts.unlabelled.join(', ')}`);
  assert(facts.loadMs !== null && facts.loadMs < 1000, `${label}: loaded in ${facts.loadMs} ms`);
  timings.push({ page: label, ms: Math.round(facts.loadMs) });

  const key = facts.path.replace(/[0-9a-f-]{36}/g, '{id}');
  if (!checked.has(key)) {
    checked.add(key);
    // Keyboard: the first Tab reaches the skip link, which leads to the content.
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.className);
    assert(focused === 'skip', `${label}: the first Tab focuses "${focused}", not the skip link`);
    // A phone's width: nothing wider than the screen.
    const viewport = page.viewportSize();
    await page.setViewportSize({ width: 360, height: 740 });
    const [overflow, culprits] = await page.evaluate(() => {
      const wide = [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
        .filter((el) => !el.closest('.table-wrap') || getComputedStyle(el).position === 'absolute')
        .slice(0, 4)
        .map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
      return [document.documentElement.scrollWidth - window.innerWidth, wide];
    });
    assert(overflow <= 1, `${label}: ${overflow}px wider than a 360px phone screen (${culprits.join(', ')})`);
    await page.setViewportSize(viewport);
  }
}

async function shot(page, name) {
  await page.evaluate(() => document.activeElement?.blur());
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function signIn(page, email, password) {
  await visit(page, '/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Sign in' }).click()]);
  await basics(page, `after signing in as ${email}`);
}

async function submit(page, button) {
  await Promise.all([page.waitForNavigation(), button.click()]);
}

/** Reloads `path` until `text` shows (events travel between services asynchronously). */
async function until(page, path, text, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await page.goto(WEB + path);
    if ((await page.content()).includes(text)) return;
    assert(Date.now() < deadline, `timed out waiting for ${what}`);
    await page.waitForTimeout(250);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const fresh = async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  return [context, await context.newPage()];
};

try {
  const stamp = Date.now();
  const patientEmail = process.env.PATIENT_EMAIL || `pat-${stamp}@example.test`;

  // A patient registers and is signed in.
  const [patientContext, patient] = await fresh();
  await visit(patient, '/register');
  await shot(patient, '01-register');
  await patient.getByLabel('First name').fill('Ada');
  await patient.getByLabel('Last name').fill('Lovelace');
  await patient.getByLabel('Email').fill(patientEmail);
  await patient.getByLabel('Password (at least 10 characters)').fill('short');
  await submit(patient, patient.getByRole('button', { name: 'Create account' }));
  // Validation happens on the server and is shown next to the field.
  const passwordError = await patient.locator('#e-password').textContent();
  assert(/10/.test(passwordError), `a short password is explained next to its field: "${passwordError}"`);
  assert((await patient.getByLabel('Password (at least 10 characters)').inputValue()) === '', 'a refused password is not sent back');
  await patient.getByLabel('Password (at least 10 characters)').fill('a long enough passphrase');
  await submit(patient, patient.getByRole('button', { name: 'Create account' }));
  assert(new URL(patient.url()).pathname === '/doctors', `registration leads to the directory, not ${patient.url()}`);
  await basics(patient, 'directory');

  // The session cookie: HttpOnly, SameSite, not Secure over plain HTTP; nothing else kept.
  const cookies = await patientContext.cookies();
  assert(cookies.length === 1, `the browser holds one cookie, not ${cookies.map((c) => c.name)}`);
  const [cookie] = cookies;
  assert(cookie.name === 'polyclinic_session', `cookie name ${cookie.name}`);
  assert(cookie.httpOnly === true, 'the session cookie is HttpOnly');
  assert(cookie.sameSite === 'Lax', `the session cookie is SameSite=${cookie.sameSite}`);
  assert(cookie.secure === false, 'over plain HTTP the cookie cannot be Secure (a TLS deployment sets it)');
  assert(!(await patient.evaluate(() => document.cookie)).includes('polyclinic_session'), 'scripts cannot read the session cookie');

  // The directory, filtered by department, then the doctor's week.
  await shot(patient, '02-directory');
  const department = await patient.getByLabel('Department').locator('option').nth(1).getAttribute('value');
  await patient.getByLabel('Department').selectOption(department);
  await submit(patient, patient.getByRole('button', { name: 'Show doctors' }));
  await basics(patient, 'directory filtered');
  await submit(patient, patient.locator('a.button', { hasText: 'See free times' }).first());
  await basics(patient, 'week view');
  await shot(patient, '03-week');
  const firstSlot = patient.locator('.week a.button').first();
  const slotLabel = await firstSlot.textContent();
  await submit(patient, firstSlot);
  await basics(patient, 'confirm booking');
  await patient.getByLabel('Reason for the visit (optional)').fill('Chest pain on exertion');
  await submit(patient, patient.getByRole('button', { name: 'Reserve and continue to payment' }));
  const payPath = new URL(patient.url()).pathname;
  assert(/^\/appointments\/[0-9a-f-]{36}\/pay$/.test(payPath), `reserving leads to payment, not ${payPath} (slot ${slotLabel})`);
  const appointmentPath = payPath.replace(/\/pay$/, '');
  await basics(patient, 'payment');
  await shot(patient, '04-pay');

  // A declined card first: the error is next to the card number and nothing is paid.
  await patient.getByLabel('Name on the card').fill('Ada Lovelace');
  await patient.getByLabel('Card number').fill('4000 0000 0000 0002');
  await patient.getByLabel('Expiry (MM/YY)').fill('12/39');
  await patient.getByLabel('Security code (CVC)').fill('123');
  await submit(patient, patient.getByRole('button', { name: /^Pay / }));
  const declined = await patient.locator('#e-card_number').textContent();
  assert(/declined/i.test(declined), `a declined card is said so: "${declined}"`);
  await patient.getByLabel('Name on the card').fill('Ada Lovelace');
  await patient.getByLabel('Card number').fill('4242 4242 4242 4242');
  await patient.getByLabel('Expiry (MM/YY)').fill('12/39');
  await patient.getByLabel('Security code (CVC)').fill('123');
  await submit(patient, patient.getByRole('button', { name: /^Pay / }));
  assert(new URL(patient.url()).pathname === appointmentPath, `paying leads to the appointment, not ${patient.url()}`);
  assert((await patient.content()).includes('Payment authorised'), 'the payment is confirmed on the page');
  await until(patient, appointmentPath, '>PAID<', 'the appointment to become PAID');
  await basics(patient, 'appointment');
  await visit(patient, '/appointments');
  await shot(patient, '05-my-appointments');

  // CSRF: a post without the session's token is refused and changes nothing.
  const forged = await patient.evaluate(async (path) => {
    const response = await fetch(path + '/cancel', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'reason=forged',
    });
    return response.status;
  }, appointmentPath);
  assert(forged === 403, `a post without the CSRF token answers ${forged}, not 403`);
  await visit(patient, appointmentPath);
  assert((await patient.content()).includes('>PAID<'), 'the refused post cancelled nothing');

  // Roles: a patient gets no admin or doctor screen.
  for (const path of ['/admin/queue', '/admin/payments', '/doctor', '/nurse']) {
    await visit(patient, path, { status: 403 });
  }

  // Another patient typing the first one's URLs gets 404.
  const [otherContext, other] = await fresh();
  await visit(other, '/register');
  await other.getByLabel('First name').fill('Grace');
  await other.getByLabel('Last name').fill('Hopper');
  await other.getByLabel('Email').fill(`other-${stamp}@example.test`);
  await other.getByLabel('Password (at least 10 characters)').fill('another long passphrase');
  await submit(other, other.getByRole('button', { name: 'Create account' }));
  await visit(other, appointmentPath, { status: 404 });
  await visit(other, payPath, { status: 404 });
  await otherContext.close();

  // Signed out, a private page asks for sign-in and comes back after it.
  const [anonContext, anon] = await fresh();
  await anon.goto(WEB + '/record');
  assert(new URL(anon.url()).pathname === '/login', `an anonymous visitor is sent to sign in, not ${anon.url()}`);
  await anonContext.close();

  // The admin approves with a room and a nurse that are free.
  const [adminContext, admin] = await fresh();
  await signIn(admin, env('ADMIN_EMAIL'), env('ADMIN_PASSWORD'));
  await visit(admin, '/admin/queue');
  await shot(admin, '06-admin-queue');
  const room = admin.getByLabel('Room').first();
  const nurse = admin.getByLabel('Nurse').first();
  assert((await room.locator('option').count()) >= 1, 'a free room is offered');
  assert((await nurse.locator('option').count()) >= 1, 'a free nurse is offered');
  await submit(admin, admin.getByRole('button', { name: 'Approve' }).first());
  assert((await admin.content()).includes('Approved'), 'the approval is confirmed');
  for (const path of ['/admin/appointments', '/admin/payments', '/admin/users', '/admin/departments', '/admin/schedules', '/admin/deliveries', '/admin/status']) {
    await visit(admin, path);
  }
  await visit(admin, '/admin/payments?status=succeeded');
  assert((await admin.content()).includes('Refund'), 'the captured payment can be refunded');
  await shot(admin, '07-admin-payments');
  await visit(admin, '/admin/status');
  await shot(admin, '08-admin-status');
  await visit(admin, '/record', { status: 403 });
  await adminContext.close();

  // The doctor finds the visit, records an allergy and prescribes: warned, then overrides.
  const [doctorContext, doctor] = await fresh();
  await signIn(doctor, env('DOCTOR_EMAIL'), STAFF_PASSWORD);
  await visit(doctor, '/doctor?view=week');
  await shot(doctor, '09-doctor-week');
  await submit(doctor, doctor.getByRole('link', { name: /^Record/ }).first());
  await basics(doctor, 'patient record (doctor)');
  const recordPath = new URL(doctor.url()).pathname;
  await doctor.getByLabel('Substance').fill('Penicillin');
  await doctor.getByLabel('Reaction').fill('hives');
  await doctor.getByLabel('Severity').selectOption('SEVERE');
  await submit(doctor, doctor.getByRole('button', { name: 'Save allergy' }));
  assert((await doctor.content()).includes('Saved to the record'), 'the allergy is saved');
  await doctor.getByLabel('Medication').fill('Penicillin V');
  await doctor.getByLabel('Strength (e.g. 500 mg)').fill('250 mg');
  await doctor.getByLabel('Form (e.g. tablet)').fill('tablet');
  await doctor.getByLabel('Dose (e.g. 1 tablet)').fill('1 tablet');
  await doctor.getByLabel('Route (e.g. oral)').fill('oral');
  await doctor.getByLabel('Frequency (e.g. twice daily)').fill('four times daily');
  await doctor.getByLabel('Duration (e.g. 7 days)').fill('10 days');
  await doctor.getByLabel('Quantity').fill('40');
  await doctor.getByLabel('Refills allowed').fill('1');
  await submit(doctor, doctor.getByRole('button', { name: 'Issue prescription' }));
  assert((await doctor.locator('#allergy-warning').textContent()).toLowerCase().includes('penicillin'), 'the allergy warning names the substance');
  await basics(doctor, 'allergy warning');
  await shot(doctor, '10-allergy-warning');
  await doctor.getByLabel('Reason to prescribe despite the allergy').fill('Tolerated a graded challenge in hospital');
  await submit(doctor, doctor.getByRole('button', { name: 'Issue prescription' }));
  assert((await doctor.content()).includes('Prescription issued'), 'the prescription is issued after the override');
  await visit(doctor, '/doctor/refills');
  await visit(doctor, '/doctor/unavailability');
  await doctorContext.close();

  // The nurse sees the assigned visit and records vitals.
  const [nurseContext, nurseTab] = await fresh();
  await signIn(nurseTab, env('NURSE_EMAIL'), STAFF_PASSWORD);
  await visit(nurseTab, '/nurse');
  await visit(nurseTab, recordPath);
  await nurseTab.getByLabel('Pulse (bpm)').fill('72');
  await nurseTab.getByLabel('Oxygen saturation (%)').fill('98');
  await nurseTab.getByLabel('Systolic blood pressure (mmHg)').fill('300');
  await nurseTab.getByLabel('Diastolic blood pressure (mmHg)').fill('80');
  await submit(nurseTab, nurseTab.getByRole('button', { name: 'Save vitals' }));
  assert((await nurseTab.locator('#e-systolic_mmhg').count()) === 1, 'an impossible blood pressure is refused next to its field');
  await nurseTab.getByLabel('Systolic blood pressure (mmHg)').fill('120');
  await submit(nurseTab, nurseTab.getByRole('button', { name: 'Save vitals' }));
  assert((await nurseTab.content()).includes('Saved to the record'), 'the vitals are saved');
  assert((await nurseTab.getByRole('button', { name: 'Issue prescription' }).count()) === 0, 'a nurse has no prescription form');
  await nurseContext.close();

  // The patient reads the prescription and finds its email among the notifications.
  await visit(patient, '/record');
  const record = await patient.content();
  assert(record.includes('Penicillin V'), 'the prescription is in the record');
  assert(record.includes('Pulse: 72 bpm'), 'the vitals are in the record');
  assert(record.includes('Who looked at my record'), 'the access log is shown');
  await shot(patient, '11-record');
  await until(patient, '/notifications', 'Emailed to you', 'a sent email in the notification list');
  const inbox = await patient.content();
  assert(/prescription/i.test(inbox), 'the prescription email is in the notification list');
  await basics(patient, 'notifications');
  await shot(patient, '12-notifications');
  // Mark one as read through htmx (a partial update, no page load).
  const before = await patient.locator('button', { hasText: 'Mark as read' }).count();
  await patient.locator('button', { hasText: 'Mark as read' }).first().click();
  await patient.waitForFunction((n) => document.querySelectorAll('form[hx-post] button').length === n - 1, before);

  // Sign out ends the session on the server too.
  const cookieBefore = (await patientContext.cookies())[0].value;
  await submit(patient, patient.getByRole('button', { name: 'Sign out' }));
  const [again] = await patientContext.cookies();
  assert(again.value !== cookieBefore, 'signing out replaces the session');
  await patientContext.close();

  writeFileSync(join(ARTIFACTS, 'timings.json'), JSON.stringify(timings, null, 2));
  const slowest = timings.reduce((a, b) => (b.ms > a.ms ? b : a));
  console.log(`browser flow passed: ${timings.length} page loads, slowest ${slowest.ms} ms (${slowest.page}); screenshots in ${ARTIFACTS}`);
} finally {
  await browser.close();
}
