// What the two pages share: service.token, asked for once and kept in this browser's localStorage.
"use strict";

const TOKEN_KEY = "zapvoice-token";

function savedToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function saveToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

// The token form (#token-form) of a page: shown when the server refuses the saved token.
function tokenForm(onSaved) {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  input.value = savedToken();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveToken(input.value.trim());
    form.hidden = true;
    onSaved();
  });
  return { ask() { form.hidden = false; input.focus(); } };
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} ms`;
}
